"""``[link]`` settings (petranode.net.link.settings)."""

from __future__ import annotations

import dataclasses

import pytest

from petranode.net.link.errors import LinkConfigInvalid
from petranode.net.link.settings import LinkConfig


def test_defaults_are_valid_and_private() -> None:
    config = LinkConfig()
    config.validate()
    assert config.host == "127.0.0.1" and config.port == 0
    assert config.keepalive_s < config.idle_timeout_s


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"handshake_timeout_s": 0.0}, "link.handshake_timeout_s"),
        ({"idle_timeout_s": -1.0}, "link.idle_timeout_s"),
        ({"keepalive_s": 60.0}, "link.keepalive_s"),
        ({"write_timeout_s": 1e9}, "link.write_timeout_s"),
        ({"host": ""}, "link.host"),
        ({"port": 70_000}, "link.port"),
        ({"max_peers": 0}, "link.max_peers"),
        ({"max_inbound_per_ip": 0}, "link.max_inbound_per_ip"),
        ({"max_pending_handshakes": 0}, "link.max_pending_handshakes"),
        ({"max_message_bytes": 100}, "link.max_message_bytes"),
        ({"max_message_bytes": 2**30}, "link.max_message_bytes"),
        ({"write_buffer_bytes": 1}, "link.write_buffer_bytes"),
    ],
)
def test_a_wrong_value_is_one_line_naming_the_key(changes: dict[str, object], key: str) -> None:
    config = dataclasses.replace(LinkConfig(), **changes)  # type: ignore[arg-type]
    with pytest.raises(LinkConfigInvalid) as raised:
        config.validate()
    message = str(raised.value)
    assert message.startswith(key + ":")
    assert "\n" not in message
