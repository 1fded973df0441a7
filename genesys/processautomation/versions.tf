terraform {
  required_version = ">= 1.5"

  required_providers {
    genesyscloud = {
      source = "mypurecloud/genesyscloud"
      # 1.70.0 or newer: from there on genesyscloud_flow computes file_content_hash itself (it
      # was a required argument up to 1.67 and optional in 1.68). The trigger's string
      # match_criteria and workflow_target_settings are older than that.
      version = ">= 1.70.0, < 2.0.0"
    }
  }
}

# No provider block, so that ../terraform can use this folder as a module (with count). Applied
# on its own, Terraform configures the provider from the environment:
#   GENESYSCLOUD_OAUTHCLIENT_ID, GENESYSCLOUD_OAUTHCLIENT_SECRET, GENESYSCLOUD_REGION
