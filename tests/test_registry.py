import sys

import pytest

from il_toolkit.registry import DuplicateKeyError, Registry, UnknownKeyError


def test_lazy_entry_is_imported_only_on_first_get():
    registry = Registry("thing")
    registry.register("decoder", indirect="json.decoder:JSONDecoder")
    registry.register("colorsys", indirect="colorsys:rgb_to_hsv")
    sys.modules.pop("colorsys", None)
    assert "colorsys" not in sys.modules
    assert registry.get("colorsys")(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0)
    assert "colorsys" in sys.modules


def test_duplicate_key_is_refused():
    registry = Registry("thing")
    registry.register("a", value=1)
    with pytest.raises(DuplicateKeyError, match="already has 'a'"):
        registry.register("a", value=2)
    assert registry.get("a") == 1


def test_unknown_key_lists_known_keys():
    registry = Registry("expert")
    registry.register("b", value=1)
    registry.register("a", value=2)
    with pytest.raises(UnknownKeyError) as info:
        registry.get("c")
    assert str(info.value) == "unknown expert 'c'; known expert keys: a, b"


def test_metadata_is_readable_without_resolving():
    registry = Registry("thing")
    registry.register("x", indirect="no_such_module_anywhere:thing", env_ids=("E",))
    assert registry.metadata("x") == {"env_ids": ("E",)}
    with pytest.raises(ModuleNotFoundError):
        registry.get("x")


@pytest.mark.parametrize("bad", ["no_colon", ":attr", "module:"])
def test_malformed_indirect_is_refused(bad):
    with pytest.raises(ValueError, match="module:attr"):
        Registry("thing").register("k", indirect=bad)


def test_toolkit_registries_resolve_every_key():
    from il_toolkit.experts import EXPERT_REGISTRY
    from il_toolkit.policies import POLICY_REGISTRY

    for registry in (EXPERT_REGISTRY, POLICY_REGISTRY):
        for key in registry.keys():
            assert callable(registry.get(key)), key
