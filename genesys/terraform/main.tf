# Genesys Cloud side of attrsync, as CX as Code:
#
#   1. a role and an OAuth client (client credentials) for attrsync itself;
#   2. a Web Services Data Actions integration with Basic Auth credentials, and the
#      "attrsync - Look up caller" data action for Architect flows;
#   3. optionally, the Amazon EventBridge source integration sending customer.start events to AWS
#      (genesys/eventbridge/ sets up the AWS side);
#   4. optionally, the push path without AWS: a Process Automation trigger and the workflow it
#      runs (genesys/processautomation/).
#
#   terraform init
#   terraform apply -var attrsync_base_url=https://attrsync.example.com \
#                   -var lookup_basic_auth_password=...
#
# See genesys/README.md for what each part is for and what could not be verified.

locals {
  # The data action is defined once, in the JSON that Genesys Cloud's "Import" also accepts; the
  # resource below takes every part of it from there, so the two cannot drift apart. Only the
  # placeholder host is replaced by var.attrsync_base_url.
  action     = jsondecode(file("${path.module}/../data-action-attrsync-lookup.json"))
  lookup_url = replace(local.action.config.request.requestUrlTemplate, "https://YOUR-ATTRSYNC-HOST", trimsuffix(var.attrsync_base_url, "/"))

  role_divisions = length(var.role_division_ids) > 0 ? var.role_division_ids : [data.genesyscloud_auth_division_home.home.id]
}

data "genesyscloud_auth_division_home" "home" {}

data "genesyscloud_organizations_me" "current" {}

# ---------------------------------------------------------------------------------------------
# 1. attrsync's own identity

# What attrsync calls (see genesys/README.md):
#   GET   /api/v2/conversations/{conversationId}                                    conversation:communication:view
#   PATCH /api/v2/conversations/{conversationId}/participants/{participantId}/attributes
#         declares no permission in the API specification, so none is added for it.
resource "genesyscloud_auth_role" "attrsync" {
  name        = var.role_name
  description = "attrsync: reads live conversations to find the customer participant, then writes CRM data as participant attributes."

  permission_policies {
    domain      = "conversation"
    entity_name = "communication"
    action_set  = ["view"]
  }
}

resource "genesyscloud_oauth_client" "attrsync" {
  name                          = var.oauth_client_name
  description                   = "attrsync (CRM look-up into participant attributes). Client credentials; scopes do not apply to this grant, the role does."
  authorized_grant_type         = "CLIENT-CREDENTIALS"
  access_token_validity_seconds = var.access_token_validity_seconds
  state                         = "active"
  expose_client_secret          = var.expose_client_secret

  dynamic "roles" {
    for_each = toset(local.role_divisions)
    content {
      role_id     = genesyscloud_auth_role.attrsync.id
      division_id = roles.value
    }
  }
}

# ---------------------------------------------------------------------------------------------
# 2. The data action Architect calls: POST <attrsync>/v1/lookup

resource "genesyscloud_integration_credential" "lookup" {
  name                 = "${var.integration_name} basic auth"
  credential_type_name = "basicAuth"
  fields = {
    userName = var.lookup_basic_auth_username
    password = var.lookup_basic_auth_password
  }
}

resource "genesyscloud_integration" "lookup" {
  intended_state   = "ENABLED"
  integration_type = "custom-rest-actions"

  config {
    name = var.integration_name
    credentials = {
      basicAuth = genesyscloud_integration_credential.lookup.id
    }
  }
}

resource "genesyscloud_integration_action" "lookup" {
  name                   = local.action.name
  category               = genesyscloud_integration.lookup.config[0].name
  integration_id         = genesyscloud_integration.lookup.id
  secure                 = local.action.secure
  config_timeout_seconds = local.action.config.timeoutSeconds

  contract_input  = jsonencode(local.action.contract.input.inputSchema)
  contract_output = jsonencode(local.action.contract.output.successSchema)

  config_request {
    request_url_template = local.lookup_url
    request_type         = local.action.config.request.requestType
    request_template     = local.action.config.request.requestTemplate
    headers              = local.action.config.request.headers
  }

  config_response {
    translation_map          = local.action.config.response.translationMap
    translation_map_defaults = local.action.config.response.translationMapDefaults
    success_template         = local.action.config.response.successTemplate
  }
}

# ---------------------------------------------------------------------------------------------
# 3. Optional: conversation customer.start events to Amazon EventBridge

resource "genesyscloud_integration" "eventbridge" {
  count = var.eventbridge_aws_account_id == "" ? 0 : 1

  intended_state   = "ENABLED"
  integration_type = "amazon-eventbridge-source"

  config {
    name = "${var.integration_name} EventBridge source"
    properties = jsonencode({
      eventSourceSuffix = var.eventbridge_event_source_suffix
      awsAccountId      = var.eventbridge_aws_account_id
      awsAccountRegion  = var.eventbridge_aws_region
      eventFilter       = ["v2.detail.events.conversation.{id}.customer.start"]
    })
    advanced = jsonencode({})
    notes    = "customer.start events for attrsync (rule and API destination: genesys/eventbridge/)"
  }
}

# ---------------------------------------------------------------------------------------------
# 4. Optional: the push path without AWS. A Process Automation trigger on customer.start runs
#    an Architect workflow that calls the data action above (../processautomation/).

module "process_automation" {
  source = "../processautomation"
  count  = var.process_automation_enabled ? 1 : 0

  # Taken from the resources above, so the workflow calls exactly this integration and action
  # (and is published only after them).
  data_action_category = genesyscloud_integration.lookup.config[0].name
  data_action_name     = genesyscloud_integration_action.lookup.name

  media_types       = var.process_automation_media_types
  trigger_enabled   = var.process_automation_trigger_enabled
  event_ttl_seconds = var.process_automation_event_ttl_seconds
}

# ---------------------------------------------------------------------------------------------

output "oauth_client_id" {
  description = "attrsync's GENESYS_CLIENT_ID."
  value       = genesyscloud_oauth_client.attrsync.client_id
}

output "oauth_client_secret" {
  description = "attrsync's GENESYS_CLIENT_SECRET (only with expose_client_secret = true)."
  value       = var.expose_client_secret ? genesyscloud_oauth_client.attrsync.client_secret : null
  sensitive   = true
}

output "data_action_id" {
  description = "Id of the data action, as Architect's Call Data Action refers to it."
  value       = genesyscloud_integration_action.lookup.id
}

output "process_automation_trigger_id" {
  description = "Id of the Process Automation trigger (with process_automation_enabled), for its test endpoint."
  value       = var.process_automation_enabled ? module.process_automation[0].trigger_id : null
}

output "eventbridge_partner_event_source" {
  description = "Name of the partner event source to associate with an event bus in AWS (genesys/eventbridge/ var.partner_event_source_name)."
  value       = var.eventbridge_aws_account_id == "" ? null : "aws.partner/genesys.com/cloud/${data.genesyscloud_organizations_me.current.id}/${var.eventbridge_event_source_suffix}"
}
