"""The public surface: __all__ is sorted, complete and importable."""

import policyengine as pe


def test_all_is_sorted_and_unique() -> None:
    assert list(pe.__all__) == sorted(set(pe.__all__))


def test_all_names_exist() -> None:
    for name in pe.__all__:
        assert hasattr(pe, name), name


def test_no_private_or_module_leaks() -> None:
    public = {n for n in dir(pe) if not n.startswith("_")}
    # Submodules (adapters, testing, ...) are imported by path, not re-exported.
    import types

    modules = {n for n in public if isinstance(getattr(pe, n), types.ModuleType)}
    assert public - modules - {"annotations"} == set(pe.__all__)


def test_contract_names() -> None:
    for name in (
        "load_policy",
        "Engine",
        "Response",
        "Action",
        "ActionKind",
        "parse_retry_after",
        "PolicyError",
    ):
        assert name in pe.__all__


def test_version_comes_from_the_package_metadata() -> None:
    from importlib.metadata import version

    assert pe.__version__ == version("policyengine")
    import pytest

    with pytest.raises(AttributeError):
        _ = pe.no_such_name  # type: ignore[attr-defined]
