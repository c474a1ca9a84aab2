"""template.yaml rules that cfn-lint does not check, and the public logical IDs."""

from devstack.template import Template

PUBLIC_IDS = {
    "WebhookApi",
    "ReceiverFunction",
    "EventsQueue",
    "EventsDeadLetterQueue",
    "ForwarderFunction",
    "CommonLayer",
    "StripeWebhookSecret",
    "MixpanelCredentials",
    "LedgerTable",
    "ShopifyWebhookSecret",
    "PaddleWebhookSecret",
    "LemonSqueezyWebhookSecret",
    "RevenueCatWebhookSecret",
    "StandardWebhooksSecrets",
}


def test_public_logical_ids_exist() -> None:
    assert set(Template().resources) >= PUBLIC_IDS


def test_visibility_timeout_covers_six_forwarder_timeouts_plus_the_largest_batching_window() -> None:
    template = Template()
    timeout = int(template.function_setting("ForwarderFunction", "Timeout"))
    window_max = int(template.doc["Parameters"]["ForwarderBatchingWindowSeconds"]["MaxValue"])
    window_default = int(template.parameters["ForwarderBatchingWindowSeconds"])
    visibility = int(template.properties("EventsQueue")["VisibilityTimeout"])
    assert visibility >= 6 * timeout + window_default
    assert visibility >= timeout  # Lambda refuses the mapping otherwise
    assert window_max <= 300


def test_redrive_to_the_dead_letter_queue_after_at_least_five_receives() -> None:
    template = Template()
    redrive = template.properties("EventsQueue")["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]}
    assert redrive["maxReceiveCount"] == {"Ref": "MaxReceiveCount"}
    assert int(template.doc["Parameters"]["MaxReceiveCount"]["MinValue"]) >= 5


def test_forwarder_reports_batch_item_failures_and_fills_mixpanel_requests() -> None:
    template = Template()
    source = template.sqs_event_source(
        "ForwarderFunction", lambda v: template.parameters[v["Ref"]] if isinstance(v, dict) else v
    )
    assert source.queue == "EventsQueue" and source.report_batch_item_failures
    assert source.batch_size >= 500 and source.batching_window_s >= 1


def test_webhook_route_and_output() -> None:
    template = Template()
    assert template.http_routes("ReceiverFunction") == [("POST", "/webhooks/{provider}")]
    assert "WebhookUrl" in template.doc["Outputs"]


def test_runtime_and_one_architecture_for_functions_and_layer() -> None:
    template = Template()
    assert template.function_setting("ReceiverFunction", "Runtime") == "python3.13"
    parameter = template.doc["Parameters"]["Architecture"]
    assert parameter["Default"] == "arm64" and sorted(parameter["AllowedValues"]) == ["arm64", "x86_64"]
    architecture = {"Ref": "Architecture"}
    for function in ("ReceiverFunction", "ForwarderFunction"):
        assert template.function_setting(function, "Architectures") == [architecture]
    layer = template.resources["CommonLayer"]
    assert layer["Properties"]["CompatibleArchitectures"] == [architecture]
    assert layer["Metadata"]["BuildArchitecture"] == architecture


def test_variables_for_sam_local_are_declared_empty_and_empty_changes_nothing() -> None:
    """`sam local --env-vars` only sets declared variables; deployed, their empty values must mean "unset"."""
    from revenue_webhooks.aws_json import endpoint
    from revenue_webhooks.config import MIXPANEL_HOSTS, from_environ

    template = Template()

    def resolve(value: object) -> object:  # parameters by their defaults, resources by their logical ids
        return template.parameters.get(value["Ref"], value["Ref"]) if isinstance(value, dict) else value

    receiver = template.function_environment("ReceiverFunction", resolve)
    forwarder = template.function_environment("ForwarderFunction", resolve)
    assert receiver["AWS_ENDPOINT_URL"] == forwarder["AWS_ENDPOINT_URL"] == ""
    assert forwarder["MIXPANEL_API_URL"] == ""
    assert from_environ(forwarder).mixpanel_base_url == MIXPANEL_HOSTS[template.parameters["MixpanelRegion"]]
    assert endpoint("SQS", "sqs", "eu-west-1", receiver) == "https://sqs.eu-west-1.amazonaws.com"
