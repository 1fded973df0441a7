variable "data_action_category" {
  type        = string
  description = "Category of the attrsync data action in Architect: the name of the Web Services Data Actions integration ../terraform creates (its var.integration_name)."
  default     = "attrsync"
}

variable "data_action_name" {
  type        = string
  description = "Name of the attrsync data action. Empty = the name in ../data-action-attrsync-lookup.json, which ../terraform and the UI import both use."
  default     = ""
}

variable "workflow_name" {
  type        = string
  description = "Name of the Architect workflow the trigger runs. Changing it creates a new workflow (the provider's rule for flow names)."
  default     = "attrsync - Enrich new conversation"
}

variable "workflow_division" {
  type        = string
  description = "Division of the workflow, by name."
  default     = "Home"
}

variable "workflow_language" {
  type        = string
  description = "Default (and only) language of the workflow."
  default     = "en-us"
}

variable "trigger_name" {
  type        = string
  description = "Name of the Process Automation trigger."
  default     = "attrsync - customer.start"
}

variable "trigger_enabled" {
  type        = bool
  description = "Whether the trigger fires. Set false to deploy it switched off and test it first (POST /api/v2/processautomation/triggers/{id}/test)."
  default     = true
}

variable "media_types" {
  type        = list(string)
  description = "Conversation media types that fire the trigger (mediaType of the customer.start event): VOICE, CALLBACK, MESSAGE, EMAIL, CHAT, ... The workflow sends a phone number for VOICE, CALLBACK and SMS/WhatsApp MESSAGEs, an email address for EMAIL; for anything else attrsync reads the customer participant."
  default     = ["VOICE"]

  validation {
    condition     = length(var.media_types) > 0 && alltrue([for m in var.media_types : contains(["UNKNOWN", "VOICE", "CHAT", "EMAIL", "CALLBACK", "COBROWSE", "VIDEO", "SCREENSHARE", "MESSAGE", "INTERNALMESSAGE", "SCREENMONITORING"], m)])
    error_message = "media_types: one or more of the event's mediaType values, upper case (VOICE, CALLBACK, MESSAGE, EMAIL, CHAT, ...)."
  }
}

variable "directions" {
  type        = list(string)
  description = "Directions that fire the trigger. INBOUND only by default: on an outbound conversation the ani is the org's own number, and the workflow would look the org up."
  default     = ["INBOUND"]

  validation {
    condition     = length(var.directions) > 0 && alltrue([for d in var.directions : contains(["INBOUND", "OUTBOUND", "UNKNOWN"], d)])
    error_message = "directions: INBOUND, OUTBOUND or UNKNOWN (the event's direction values)."
  }
}

variable "extra_match_criteria" {
  type = list(object({
    jsonPath = string
    operator = string
    value    = optional(any)
    values   = optional(list(any))
  }))
  description = "Further match criteria, ANDed with the media type and direction ones, e.g. [{ jsonPath = \"divisionId\", operator = \"Equal\", value = \"<division id>\" }]. Give value or values, not both."
  default     = []
}

variable "event_ttl_seconds" {
  type        = number
  description = "Events older than this do not fire the trigger (at least 10). 300 matches attrsync's queue.retry_horizon_secs: after that, writing attributes is no longer worth it."
  default     = 300

  validation {
    condition     = var.event_ttl_seconds >= 10
    error_message = "event_ttl_seconds must be at least 10 (the provider's and the API's lower bound)."
  }
}
