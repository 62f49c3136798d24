"""Webhook endpoints through the real app: subscribe, read, delete; 422 for bad input, 404 across tenants."""

from __future__ import annotations

from fastapi.testclient import TestClient

ENDPOINT = {"url": "https://hooks.example.com/tuneforge", "events": ["job.succeeded", "job.failed"]}


def test_an_endpoint_is_created_with_its_secret_once_then_listed_read_and_deleted(client: TestClient) -> None:
    created = client.post("/v1/webhooks", json=ENDPOINT | {"description": "ops"})
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert endpoint["secret"].startswith("whsec_") and len(endpoint["secret"]) > 40
    assert created.headers["location"] == f"/v1/webhooks/{endpoint['id']}"
    assert endpoint["events"] == ["job.failed", "job.succeeded"]

    got = client.get(f"/v1/webhooks/{endpoint['id']}").json()
    assert "secret" not in got and got["url"] == ENDPOINT["url"] and got["description"] == "ops"
    assert [e["id"] for e in client.get("/v1/webhooks").json()["items"]] == [endpoint["id"]]
    no_deliveries = client.get(f"/v1/webhooks/{endpoint['id']}/deliveries").json()
    assert no_deliveries == {"items": [], "next_cursor": None}

    everything = client.post("/v1/webhooks", json={"url": "http://hooks.example.com/all"}).json()
    assert everything["events"] == ["*"]

    assert client.delete(f"/v1/webhooks/{endpoint['id']}").status_code == 204
    assert client.get(f"/v1/webhooks/{endpoint['id']}").status_code == 404
    assert [e["id"] for e in client.get("/v1/webhooks").json()["items"]] == [everything["id"]]


def test_bad_input_is_a_422_that_names_the_problem(client: TestClient) -> None:
    cases = {
        "ftp://hooks.example.com/x": "URL scheme should be 'http' or 'https'",
        "not a url": "valid URL",
        "http://127.0.0.1:8080/hook": "127.0.0.1 is a loopback address",
        "http://10.0.0.7/hook": "10.0.0.7 is a private address",
        "http://169.254.169.254/latest": "link-local",
        "http://[::1]/hook": "::1 is a loopback address",
        "http://localhost:9000/hook": "localhost is this machine",
    }
    for url, message in cases.items():
        response = client.post("/v1/webhooks", json={"url": url})
        assert response.status_code == 422, (url, response.text)
        assert message in response.text, (url, response.text)
        assert response.json()["errors"][0]["loc"][-1] == "url"
    response = client.post("/v1/webhooks", json=ENDPOINT | {"events": ["job.finished"]})
    assert response.status_code == 422 and "job.succeeded" in response.text  # lists what is allowed
    assert response.json()["errors"][0]["loc"][:2] == ["body", "events"]
    assert client.post("/v1/webhooks", json=ENDPOINT | {"events": []}).status_code == 422
    assert client.get("/v1/webhooks").json()["items"] == []


def test_another_tenants_endpoint_and_deliveries_are_404(
    client: TestClient, other_client: TestClient
) -> None:
    endpoint = client.post("/v1/webhooks", json=ENDPOINT).json()
    base = f"/v1/webhooks/{endpoint['id']}"
    for response in (
        other_client.get(base),
        other_client.delete(base),
        other_client.get(f"{base}/deliveries"),
        other_client.post(f"{base}/deliveries/msg_unknown/redeliver"),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "webhook_not_found"
    assert other_client.get("/v1/webhooks").json()["items"] == []
    assert client.post(f"{base}/deliveries/msg_unknown/redeliver").json()["code"] == "delivery_not_found"
    assert client.get(base).status_code == 200  # the failed delete changed nothing
