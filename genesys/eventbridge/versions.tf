terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

# Credentials and region from the usual AWS environment (AWS_PROFILE, AWS_REGION, ...). The
# region must be the one given to the Genesys EventBridge integration.
provider "aws" {}
