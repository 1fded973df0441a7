terraform {
  required_version = ">= 1.5"

  required_providers {
    genesyscloud = {
      source  = "mypurecloud/genesyscloud"
      version = "~> 1.0"
    }
  }
}

# The provider signs in with an OAuth client (client credentials) that may create roles, OAuth
# clients and integrations. Give it through the environment, not in this file:
#   GENESYSCLOUD_OAUTHCLIENT_ID, GENESYSCLOUD_OAUTHCLIENT_SECRET, GENESYSCLOUD_REGION (e.g. us-east-1)
# That client must itself hold the roles it grants (see genesys/README.md).
provider "genesyscloud" {}
