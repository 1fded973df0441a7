# A push path without AWS: a Genesys Cloud Process Automation trigger on
# v2.detail.events.conversation.{id}.customer.start runs an Architect workflow, which calls
# attrsync's data action (POST /v1/lookup) with the conversation id, the participant id and the
# customer's number or address; attrsync looks the customer up and writes the participant
# attributes, as it does for an EventBridge event.
#
#   1. ../terraform (the integration and the "attrsync - Look up caller" data action), then
#   2. this folder, on its own:
#        terraform init && terraform apply
#      or from ../terraform with process_automation_enabled = true, which calls this folder as a
#      module and passes it the integration and action it created.
#
# See README.md in this folder for the steps, the tests to run before enabling the trigger, and
# what could not be verified.

locals {
  # The action's name, from the JSON that ../terraform and the UI import both read, unless the
  # caller passes it.
  action_name = var.data_action_name != "" ? var.data_action_name : jsondecode(file("${path.module}/../data-action-attrsync-lookup.json")).name

  # Genesys ANDs the criteria. "In" with "values" as in Genesys's own trigger example
  # (developer-center-blog, 2022-11-08-Process-Automation-Triggers).
  match_criteria = concat(
    [
      { jsonPath = "mediaType", operator = "In", values = var.media_types },
      { jsonPath = "direction", operator = "In", values = var.directions },
    ],
    [for c in var.extra_match_criteria : { for k, v in c : k => v if v != null }],
  )
}

# The workflow, from the YAML next to this file. The provider replaces each {{key}} in the file
# with its substitution, uploads it and publishes the flow; its id is the trigger's target.
resource "genesyscloud_flow" "attrsync_lookup" {
  filepath = "${path.module}/workflow-attrsync-lookup.yaml"

  substitutions = {
    flow_name            = var.workflow_name
    division             = var.workflow_division
    default_language     = var.workflow_language
    data_action_category = var.data_action_category
    data_action_name     = local.action_name
  }
}

resource "genesyscloud_processautomation_trigger" "customer_start" {
  name        = var.trigger_name
  description = "Runs the attrsync workflow when a customer joins a conversation: attrsync looks the customer up in the CRM and writes participant attributes."
  topic_name  = "v2.detail.events.conversation.{id}.customer.start"
  enabled     = var.trigger_enabled

  target {
    type = "Workflow"
    id   = genesyscloud_flow.attrsync_lookup.id
    # The workflow's inputs are the event's top-level strings (Flow.conversationId, Flow.ani,
    # ...), not one jsonData object.
    workflow_target_settings {
      data_format = "TopLevelPrimitives"
    }
  }

  match_criteria    = jsonencode(local.match_criteria)
  event_ttl_seconds = var.event_ttl_seconds
}

output "workflow_id" {
  description = "Id of the attrsync workflow."
  value       = genesyscloud_flow.attrsync_lookup.id
}

output "trigger_id" {
  description = "Id of the trigger, for POST /api/v2/processautomation/triggers/{triggerId}/test."
  value       = genesyscloud_processautomation_trigger.customer_start.id
}
