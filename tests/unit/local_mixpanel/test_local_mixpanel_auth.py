"""Who may send: a service account tied to its project_id, or the project token; anything else is 401."""

from __future__ import annotations

import pytest
from local_mixpanel_calls import SA, STRICT, TOKEN, event, post_import

from devstack.mixpanel import DEMO_CREDENTIALS, Credentials, MixpanelServer


def test_service_account_with_its_project_id_imports(server: MixpanelServer) -> None:
    response = post_import(server, [event()])
    assert response.status_code == 200
    assert response.json() == {"code": 200, "num_records_imported": 1, "status": "OK"}
    assert server.events() == [event()]


def test_project_token_as_username_with_empty_password_needs_no_project_id(server: MixpanelServer) -> None:
    response = post_import(server, [event()], auth=TOKEN, params={"strict": "1"})
    assert response.status_code == 200
    assert server.requests_log()[0]["auth"] == "project_token"


@pytest.mark.parametrize(
    ("auth", "params"),
    [
        pytest.param((DEMO_CREDENTIALS.username, "wrong"), STRICT, id="wrong-secret"),
        pytest.param(SA, {"strict": "1"}, id="service-account-without-project-id"),
        pytest.param(SA, {"strict": "1", "project_id": "2"}, id="service-account-other-project"),
        pytest.param(("not-the-token", ""), {"strict": "1"}, id="wrong-token"),
        pytest.param(TOKEN, {"strict": "1", "project_id": "2"}, id="token-with-other-project-id"),
        pytest.param(None, STRICT, id="no-auth"),
    ],
)
def test_bad_credentials_are_401_and_store_nothing(
    server: MixpanelServer, auth: tuple[str, str] | None, params: dict[str, str]
) -> None:
    response = post_import(server, [event()], auth=auth, params=params)
    assert response.status_code == 401
    assert response.json() == {"code": 401, "error": "Invalid credentials", "status": "Unauthorized"}
    assert server.raw_events() == []


def test_credentials_are_configurable() -> None:
    credentials = Credentials(project_id="42", username="ci.42.mp-service-account", secret="s3cret")
    with MixpanelServer(credentials=credentials) as mixpanel:
        ok = post_import(
            mixpanel, [event()], auth=("ci.42.mp-service-account", "s3cret"), params={"strict": "1", "project_id": "42"}
        )
        demo = post_import(mixpanel, [event()], auth=TOKEN, params={"strict": "1"})
    assert (ok.status_code, demo.status_code) == (200, 401)


def test_credentials_must_be_complete() -> None:
    with pytest.raises(ValueError, match="both a username and a secret"):
        Credentials(project_id="1", username="only-a-name")
    with pytest.raises(ValueError, match="project_id"):
        Credentials(username="u", secret="s")
    with pytest.raises(ValueError, match="project_token"):
        Credentials()
