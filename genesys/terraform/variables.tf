variable "attrsync_base_url" {
  type        = string
  description = "Public HTTPS base URL of attrsync, without a trailing path, e.g. https://attrsync.example.com. The data action POSTs to <this>/v1/lookup."

  validation {
    condition     = startswith(var.attrsync_base_url, "https://")
    error_message = "Genesys Cloud calls the data action over the internet: use an https:// URL."
  }
}

variable "lookup_basic_auth_username" {
  type        = string
  description = "User name the data action integration sends to attrsync (HTTP Basic): attrsync's auth.lookup.basic_username."
  default     = "attrsync"
}

variable "lookup_basic_auth_password" {
  type        = string
  description = "Password the data action integration sends to attrsync (HTTP Basic): one of attrsync's auth.lookup.secrets. Stored in the Terraform state: keep the state private."
  sensitive   = true
}

variable "integration_name" {
  type        = string
  description = "Name of the Web Services Data Actions integration; also the category the action is listed under in Architect."
  default     = "attrsync"
}

variable "role_name" {
  type        = string
  description = "Name of the role given to attrsync's OAuth client."
  default     = "attrsync"
}

variable "oauth_client_name" {
  type        = string
  description = "Name of attrsync's OAuth client (client credentials grant)."
  default     = "attrsync"
}

variable "access_token_validity_seconds" {
  type        = number
  description = "Lifetime of the tokens attrsync obtains, 300 to 172800 seconds. attrsync caches its token and renews it genesys.token_refresh_margin_secs before expiry."
  default     = 86400
}

variable "role_division_ids" {
  type        = list(string)
  description = "Divisions in which attrsync's role applies. Empty = the home division only. Conversations whose queues and flows belong to other divisions need those divisions here, or [\"*\"] for all divisions."
  default     = []
}

variable "expose_client_secret" {
  type        = bool
  description = "Output the OAuth client secret (as a sensitive output, stored in the Terraform state). Otherwise copy it from Admin > OAuth in the Genesys Cloud UI."
  default     = false
}

variable "eventbridge_aws_account_id" {
  type        = string
  description = "12-digit AWS account that receives conversation events through Amazon EventBridge. Empty = do not create the EventBridge source integration (use the data action only)."
  default     = ""
}

variable "eventbridge_aws_region" {
  type        = string
  description = "AWS region of that account, e.g. us-east-1."
  default     = "us-east-1"
}

variable "eventbridge_event_source_suffix" {
  type        = string
  description = "Suffix of the partner event source name aws.partner/genesys.com/cloud/<org id>/<suffix>: letters, digits, '.', '-', '_', at most 64 characters."
  default     = "attrsync"
}

variable "process_automation_enabled" {
  type        = bool
  description = "Also create the Process Automation trigger on customer.start and the Architect workflow that calls the data action (../processautomation/): the push path for orgs without AWS."
  default     = false
}

variable "process_automation_media_types" {
  type        = list(string)
  description = "Media types whose customer.start fires the trigger (../processautomation/ var.media_types)."
  default     = ["VOICE"]
}

variable "process_automation_trigger_enabled" {
  type        = bool
  description = "Create the trigger switched on (false: test it first with its test endpoint, then enable it)."
  default     = true
}

variable "process_automation_event_ttl_seconds" {
  type        = number
  description = "Events older than this do not fire the trigger (../processautomation/ var.event_ttl_seconds)."
  default     = 300
}
