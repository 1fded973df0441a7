variable "partner_event_source_name" {
  type        = string
  description = "The Genesys partner event source, aws.partner/genesys.com/cloud/<org id>/<suffix> (genesys/terraform output eventbridge_partner_event_source, or Amazon EventBridge > Partner event sources)."

  validation {
    condition     = startswith(var.partner_event_source_name, "aws.partner/genesys.com/")
    error_message = "Expected aws.partner/genesys.com/cloud/<org id>/<suffix>."
  }
}

variable "create_partner_event_bus" {
  type        = bool
  description = "Create the partner event bus for that source. False if it was already associated in the console: the bus has the source's name either way."
  default     = true
}

variable "attrsync_events_url" {
  type        = string
  description = "attrsync's Genesys event endpoint, e.g. https://attrsync.example.com/v1/events/genesys."

  validation {
    condition     = startswith(var.attrsync_events_url, "https://")
    error_message = "API destinations call public HTTPS endpoints only."
  }
}

variable "api_key_header" {
  type        = string
  description = "Header EventBridge adds to every call to attrsync: attrsync's auth.genesys.api_key_header."
  default     = "X-API-Key"
}

variable "api_key_value" {
  type        = string
  description = "Value of that header: one of attrsync's auth.genesys.secrets. EventBridge keeps it in AWS Secrets Manager; Terraform keeps it in its state."
  sensitive   = true
}

variable "name_prefix" {
  type        = string
  description = "Prefix of the AWS resource names."
  default     = "attrsync"
}

variable "invocation_rate_limit_per_second" {
  type        = number
  description = "Most calls per second EventBridge makes to attrsync; events beyond it wait in EventBridge (and count against the retry window)."
  default     = 20
}

variable "maximum_event_age_in_seconds" {
  type        = number
  description = "How long EventBridge keeps retrying one event (60 to 86400). A customer.start is only useful while the call lasts."
  default     = 900
}

variable "maximum_retry_attempts" {
  type        = number
  description = "Retries of one event (0 to 185) within maximum_event_age_in_seconds."
  default     = 30
}
