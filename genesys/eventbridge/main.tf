# AWS side of the EventBridge path: Genesys Cloud's partner event bus -> rule matching
# customer.start -> API destination POST https://<attrsync>/v1/events/genesys, with a retry policy
# and a dead-letter queue for events that could not be delivered.
#
#   terraform init
#   terraform apply -var partner_event_source_name=aws.partner/genesys.com/cloud/<org id>/attrsync \
#                   -var attrsync_events_url=https://attrsync.example.com/v1/events/genesys \
#                   -var api_key_value=<one of auth.genesys.secrets>
#
# attrsync takes the EventBridge event as it is (no input transformer): it reads
# detail.eventBody, and uses the envelope's id to recognise redeliveries.

locals {
  # A partner event bus has the name of the partner event source it receives from.
  event_bus_name = var.create_partner_event_bus ? aws_cloudwatch_event_bus.genesys[0].name : var.partner_event_source_name
}

resource "aws_cloudwatch_event_bus" "genesys" {
  count = var.create_partner_event_bus ? 1 : 0

  name              = var.partner_event_source_name
  event_source_name = var.partner_event_source_name
}

# Credentials EventBridge sends to attrsync (stored by EventBridge in AWS Secrets Manager).
resource "aws_cloudwatch_event_connection" "attrsync" {
  name               = "${var.name_prefix}-connection"
  description        = "API key for attrsync"
  authorization_type = "API_KEY"

  auth_parameters {
    api_key {
      key   = var.api_key_header
      value = var.api_key_value
    }
  }
}

resource "aws_cloudwatch_event_api_destination" "attrsync" {
  name                             = "${var.name_prefix}-events-genesys"
  description                      = "attrsync POST /v1/events/genesys"
  invocation_endpoint              = var.attrsync_events_url
  http_method                      = "POST"
  invocation_rate_limit_per_second = var.invocation_rate_limit_per_second
  connection_arn                   = aws_cloudwatch_event_connection.attrsync.arn
}

resource "aws_cloudwatch_event_rule" "customer_start" {
  name           = "${var.name_prefix}-customer-start"
  description    = "Genesys Cloud conversation customer.start events, for attrsync"
  event_bus_name = local.event_bus_name
  event_pattern  = file("${path.module}/event-pattern.json")
}

# Events that exhausted their retries (attrsync down, 4xx answers, ...) land here with
# ERROR_CODE and ERROR_MESSAGE message attributes.
resource "aws_sqs_queue" "dlq" {
  name                      = "${var.name_prefix}-customer-start-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
}

data "aws_iam_policy_document" "dlq" {
  statement {
    sid       = "EventBridgeDeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dlq.arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.customer_start.arn]
    }
  }
}

resource "aws_sqs_queue_policy" "dlq" {
  queue_url = aws_sqs_queue.dlq.id
  policy    = data.aws_iam_policy_document.dlq.json
}

# The role EventBridge assumes to call the API destination.
data "aws_iam_policy_document" "assume_events" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "invoke_attrsync" {
  statement {
    actions   = ["events:InvokeApiDestination"]
    resources = [aws_cloudwatch_event_api_destination.attrsync.arn]
  }
}

resource "aws_iam_role" "invoke_attrsync" {
  name               = "${var.name_prefix}-invoke-api-destination"
  assume_role_policy = data.aws_iam_policy_document.assume_events.json
}

resource "aws_iam_role_policy" "invoke_attrsync" {
  name   = "invoke-attrsync"
  role   = aws_iam_role.invoke_attrsync.id
  policy = data.aws_iam_policy_document.invoke_attrsync.json
}

resource "aws_cloudwatch_event_target" "attrsync" {
  event_bus_name = local.event_bus_name
  rule           = aws_cloudwatch_event_rule.customer_start.name
  target_id      = "attrsync"
  arn            = aws_cloudwatch_event_api_destination.attrsync.arn
  role_arn       = aws_iam_role.invoke_attrsync.arn

  # attrsync answers 202 as soon as an event is queued and 503 + Retry-After when its queue is
  # full or it is shutting down; EventBridge retries with backoff for at most this long.
  retry_policy {
    maximum_event_age_in_seconds = var.maximum_event_age_in_seconds
    maximum_retry_attempts       = var.maximum_retry_attempts
  }

  dead_letter_config {
    arn = aws_sqs_queue.dlq.arn
  }
}

output "event_bus_name" {
  value = local.event_bus_name
}

output "dead_letter_queue_url" {
  value = aws_sqs_queue.dlq.id
}
