"""Who answers: an API model's identity as its server describes it, and endpoints that stop answering.

These drive :class:`OpenAIModel` against the fake server over real HTTP; what the suite does with
an identity (which cached answers it reuses) is test_ci_gate.py's and test_engine.py's.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from iqa_eval.images import ImageStore
from iqa_eval.models import openai_api
from iqa_eval.models.base import (
    ModelIdentity,
    ModelOptions,
    PermanentModelError,
    TransientModelError,
    UnreachableError,
)
from iqa_eval.models.openai_api import OpenAIModel
from iqa_eval.models.registry import ModelSpecError, make_client
from iqa_eval.types import Query, QueryImage


@pytest.fixture(autouse=True)
def local_only(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def identify(spec, *urls):
    async def go():
        client = OpenAIModel(spec, ImageStore(), ModelOptions(base_urls=urls))
        try:
            return await client.identify()
        finally:
            await client.aclose()

    return asyncio.run(go())


def dead_url() -> str:
    """A loopback port nothing listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_the_identity_is_what_the_listing_and_an_answer_say(fake_openai):
    server = fake_openai(
        models=("mymodel",), served_model="mymodel", system_fingerprint="fp_44709d6fcb", root="/models/v7"
    )
    identity = identify("openai:mymodel", server.url)
    assert identity.fingerprint == "openai:mymodel"
    assert dict(identity.served) == {
        "model": "mymodel",
        "system_fingerprint": "fp_44709d6fcb",
        "listing.id": "mymodel",
        "listing.owned_by": "fake",
        "listing.root": "/models/v7",
        "listing.created": "1715000000",
    }
    assert identity.key.startswith("openai:mymodel#") and server.probes == 1 and server.listings == 1
    assert server.requests == 0  # the probe is not a query of the suite


def test_a_dated_snapshot_behind_the_name_is_part_of_the_identity(fake_openai):
    one = identify("openai:gpt-4o", fake_openai(served_model="gpt-4o-2024-08-06").url)
    two = identify("openai:gpt-4o", fake_openai(served_model="gpt-4o-2024-11-20").url)
    assert one.fingerprint == two.fingerprint and one.key != two.key
    assert dict(one.served)["model"] == "gpt-4o-2024-08-06"


def test_a_listing_time_stamped_per_request_is_left_out(fake_openai):
    """vLLM and SGLang put the time of the listing request in ``created``: kept, it would make
    every run a new identity and the cache useless."""
    server = fake_openai(models=("m",), created_now=True, root="/weights/m")
    served = dict(identify("openai:m", server.url).served)
    assert "listing.created" not in served and served["listing.root"] == "/weights/m"
    assert identify("openai:m", server.url) == identify("openai:m", server.url)


def test_a_server_without_a_listing_still_has_an_identity(fake_openai):
    server = fake_openai(listing=False)
    identity = identify("openai:quiet", server.url)
    assert dict(identity.served) == {"model": "quiet"}


def test_a_pinned_revision_separates_servers_that_disclose_nothing(fake_openai):
    server = fake_openai(listing=False)
    r1, r2 = identify("openai:quiet@r1", server.url), identify("openai:quiet@r2", server.url)
    assert r1.served == r2.served and r1.key != r2.key
    assert r1.fingerprint == "openai:quiet@r1"


def test_replicas_that_describe_themselves_differently_make_one_identity_of_both(fake_openai):
    a = fake_openai(system_fingerprint="fp_a")
    b = fake_openai(system_fingerprint="fp_b")
    both = identify("openai:m", a.url, b.url)
    assert dict(both.served) == {"0.model": "m", "0.system_fingerprint": "fp_a", "1.model": "m",
                                 "1.system_fingerprint": "fp_b"}  # fmt: skip
    same = identify("openai:m", a.url, fake_openai(system_fingerprint="fp_a").url)
    assert dict(same.served) == {"model": "m", "system_fingerprint": "fp_a"}


@pytest.mark.parametrize(
    ("status", "kind", "reason"),
    [(401, PermanentModelError, "auth"), (500, TransientModelError, "server_error")],
)
def test_a_probe_that_fails_is_the_failure_it_met(fake_openai, status, kind, reason):
    server = fake_openai(status_override=status)
    with pytest.raises(kind) as caught:
        identify("openai:m", server.url)
    assert caught.value.reason == reason


@pytest.mark.parametrize("spec", ["openai:m@", "openai:@r1"])
def test_a_malformed_revision_is_a_clear_spec_error(spec):
    with pytest.raises(ModelSpecError, match=r"revision|openai:<model>"):
        make_client(spec, ImageStore())


def test_identities_round_trip_through_their_record():
    identity = ModelIdentity.of("openai:m@r", "openai:m@r", {"model": "m", "system_fingerprint": None})
    assert dict(identity.served) == {"model": "m"}  # what the server did not say is not part of it
    assert ModelIdentity.from_record("openai:m@r", identity.to_record()) == identity
    assert ModelIdentity.of("expert", "expert:panel@3").key == "expert:panel@3"


def query(store, tmp_path):
    from PIL import Image

    path = tmp_path / "im.png"
    Image.new("RGB", (8, 8), (10, 20, 30)).save(path)
    return Query(
        "nr", "ss", "standard", "t", "h", "Rate it.", (QueryImage("image", store.stimulus(str(path))),)
    )


def test_a_dead_endpoint_leaves_the_rotation_and_the_model_becomes_unreachable(tmp_path, monkeypatch):
    monkeypatch.setattr(openai_api, "QUIET_S", 0.0)

    async def go():
        store = ImageStore()
        client = OpenAIModel("openai:m", store, ModelOptions(base_urls=(dead_url(),)))
        q = query(store, tmp_path)
        try:
            for _ in range(openai_api.DOWN_AFTER):
                with pytest.raises(TransientModelError):
                    await client.answer(q)
            with pytest.raises(UnreachableError) as caught:
                await client.answer(q)
            return caught.value, client.notices()
        finally:
            await client.aclose()

    err, notices = asyncio.run(go())
    assert err.reason == "unreachable" and f"failed {openai_api.DOWN_AFTER} requests in a row" in err.detail
    (notice,) = notices
    assert "stopped sending to it, no endpoint left" in notice


def test_a_burst_of_failures_right_after_an_answer_is_not_an_outage(fake_openai, tmp_path, monkeypatch):
    monkeypatch.setattr(openai_api, "QUIET_S", 3600.0)
    server = fake_openai(responder=lambda request: "Score: 1")

    async def go():
        store = ImageStore()
        client = OpenAIModel("openai:m", store, ModelOptions(base_urls=(server.url,)))
        q = query(store, tmp_path)
        try:
            await client.answer(q)
            server.status_override = 503
            for _ in range(3 * openai_api.DOWN_AFTER):
                with pytest.raises(TransientModelError):
                    await client.answer(q)
            server.status_override = None
            return await client.answer(q)
        finally:
            await client.aclose()

    # Until the last answer is QUIET_S old, a run of 5xx is retried, never taken for an outage.
    assert asyncio.run(go()).text == "Score: 1"


def test_with_one_replica_dead_the_others_take_the_queries(fake_openai, tmp_path, monkeypatch):
    monkeypatch.setattr(openai_api, "QUIET_S", 0.0)
    live = fake_openai(responder=lambda request: "Score: 1")
    dead = dead_url()

    async def go():
        store = ImageStore()
        client = OpenAIModel("openai:m", store, ModelOptions(base_urls=(dead, live.url)))
        q = query(store, tmp_path)
        answered = 0
        try:
            for _ in range(4 * openai_api.DOWN_AFTER):
                try:
                    await client.answer(q)
                    answered += 1
                except TransientModelError:
                    pass
            return answered, client.notices()
        finally:
            await client.aclose()

    answered, notices = asyncio.run(go())
    assert answered == 4 * openai_api.DOWN_AFTER - openai_api.DOWN_AFTER  # the dead one failed 5 times
    (notice,) = notices
    assert dead.removesuffix("/v1") in notice and f"sending to {live.url}" in notice
