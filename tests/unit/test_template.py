"""template.yaml rules that cfn-lint does not check, and the public logical IDs."""

import pytest

from devstack.template import ROOT, Template

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
    "AppStoreConfig",
    "GooglePlayPushConfig",
    "GooglePlayCredentials",
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


def test_variables_for_sam_local_are_declared_empty_and_empty_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """`sam local --env-vars` only sets declared variables; deployed, their empty values must mean "unset"."""
    from revenue_webhooks.adapters import aws
    from revenue_webhooks.config import MIXPANEL_HOSTS, from_environ

    from devstack.template import Resolver

    template = Template()

    class LogicalIds(dict[str, str]):
        def __missing__(self, key: str) -> str:
            return key

    # Parameters by their defaults, conditions by them, resources by their logical ids.
    resolve = Resolver(template, LogicalIds(), {}, {})
    receiver = template.function_environment("ReceiverFunction", resolve)
    forwarder = template.function_environment("ForwarderFunction", resolve)
    assert receiver["AWS_ENDPOINT_URL"] == forwarder["AWS_ENDPOINT_URL"] == ""
    assert forwarder["MIXPANEL_API_URL"] == ""
    assert from_environ(forwarder).mixpanel_base_url == MIXPANEL_HOSTS[template.parameters["MixpanelRegion"]]
    for name in ("AWS_ENDPOINT_URL_SQS", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", receiver["AWS_ENDPOINT_URL"])  # as the deployed function has it
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "unused")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "unused")
    assert aws.client("sqs").meta.endpoint_url == "https://sqs.eu-west-1.amazonaws.com"


def _transformed(monkeypatch: pytest.MonkeyPatch, **parameters: str) -> dict:
    """template.yaml through the SAM transform (samtranslator, as `sam deploy` runs it) with these parameters."""
    import copy

    from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
    from samtranslator.translator.transform import transform

    class NoManagedPolicies(ManagedPolicyLoader):
        def __init__(self) -> None:
            pass

        def load(self) -> dict:
            return {}

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # the transform asks boto3 for the pseudo parameters
    values = {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws", **parameters}
    doc = copy.deepcopy(Template().doc)
    for resource in doc["Resources"].values():  # what `sam package` does: local code becomes an S3 object
        for key in ("CodeUri", "ContentUri"):
            if key in resource.get("Properties", {}):
                resource["Properties"][key] = "s3://artifacts/code.zip"
    return transform(doc, values, NoManagedPolicies())


def test_snapstart_is_a_parameter_off_by_default_and_the_alias_is_invoked_either_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parameter = Template().doc["Parameters"]["SnapStart"]
    assert (parameter["Default"], parameter["AllowedValues"]) == ("None", ["None", "PublishedVersions"])
    for setting in ({}, {"SnapStart": "PublishedVersions"}):
        resources = _transformed(monkeypatch, **setting)["Resources"]
        for function in ("ReceiverFunction", "ForwarderFunction"):
            assert resources[function]["Properties"]["SnapStart"] == {"ApplyOn": {"Ref": "SnapStart"}}
            alias = resources[f"{function}Aliasactive"]
            assert alias["Type"] == "AWS::Lambda::Alias" and alias["Properties"]["Name"] == "active"
        mappings = [r for r in resources.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
        assert len(mappings) == 2  # EventsQueue, and the test lane's EventsTestQueue
        for mapping in mappings:
            assert mapping["Properties"]["FunctionName"] == {"Ref": "ForwarderFunctionAliasactive"}
        permission = resources["ReceiverFunctionWebhookPermission"]
        assert permission["Properties"]["FunctionName"] == {"Ref": "ReceiverFunctionAliasactive"}


def test_every_provider_declaration_has_its_secret_variable_and_policy_in_the_template() -> None:
    """docs/providers.md, "Adding a provider": the module's SPEC and the template's secret agree."""
    from revenue_webhooks.providers import specs

    template = Template()
    receiver = template.properties("ReceiverFunction")
    variables = receiver["Environment"]["Variables"]
    readable = {
        str(policy["AWSSecretsManagerGetSecretValuePolicy"]["SecretArn"]["Ref"])
        for policy in receiver["Policies"]
        if isinstance(policy, dict) and "AWSSecretsManagerGetSecretValuePolicy" in policy
    }
    for route, spec in specs().items():
        assert variables.get(spec.signing.variable) == {"Ref": spec.signing.resource}, route
        assert template.doc["Resources"][spec.signing.resource]["Type"] == "AWS::SecretsManager::Secret", route
        assert spec.signing.resource in readable, route
        assert (ROOT / "events" / route).is_dir(), f"events/{route}/ holds {route}'s samples"


def test_the_test_lane_queues_mirror_the_live_ones_and_their_variables_follow_the_condition() -> None:
    template = Template()
    live, test = template.properties("EventsQueue"), template.properties("EventsTestQueue")
    assert {k: v for k, v in live.items() if k != "RedrivePolicy"} == {
        k: v for k, v in test.items() if k != "RedrivePolicy"
    }
    assert test["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["EventsTestDeadLetterQueue", "Arn"]},
        "maxReceiveCount": {"Ref": "MaxReceiveCount"},
    }
    from devstack.template import Resolver

    class LogicalIds(dict[str, str]):
        def __missing__(self, key: str) -> str:
            return key

    for parameters, lane in (
        ({"Mode": "any"}, True),
        ({"Mode": "live"}, False),
        ({"TestEventsTo": "production"}, False),
    ):
        chosen = Template(parameters={"Mode": "any", **parameters})
        env = chosen.function_environment("ReceiverFunction", Resolver(chosen, LogicalIds(), {}, {}))
        assert (env["TEST_EVENTS_QUEUE_URL"] == "EventsTestQueue") is lane, parameters


def test_the_browser_proxy_exists_only_with_origins_and_routes_every_prefix_to_its_function() -> None:
    assert not Template().condition_holds("BrowserProxyFunction")
    with_origins = Template(parameters={"BrowserProxyOrigins": "https://www.example.com"})
    assert with_origins.condition_holds("BrowserProxyFunction")
    assert with_origins.http_routes("BrowserProxyFunction") == [("ANY", "/{prefix}/{proxy+}")]
    assert with_origins.properties("BrowserProxyFunction")["ReservedConcurrentExecutions"] == {
        "Ref": "BrowserProxyConcurrency"
    }
