"""Stand-in network failures: transport_kind() reads each as its kind."""

from __future__ import annotations

import pytest

import policyengine as pe
from policyengine._transport import TRANSPORT_FAMILIES
from policyengine.cli.failures import make_failure


@pytest.mark.parametrize("kind", sorted(TRANSPORT_FAMILIES))
def test_make_failure_gives_each_kind(kind: str) -> None:
    assert pe.transport_kind(make_failure(kind)) == kind


def test_make_failure_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown transport kind 'smoke'"):
        make_failure("smoke")
