"""aspectrag.settings: one precedence (flag > env > file > default) for every value, one place
that reads the environment, and one LLM resolution shared by ``ask`` and query generation."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aspectrag.errors import ConfigError
from aspectrag.settings import (
    ApiKey,
    ChunkingSettings,
    Settings,
    env_names,
    find_config_file,
    get_settings,
    hash_api_key,
    use_config_file,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No ASPECTRAG_* variable, no user config file, cwd an empty temp folder."""
    for var in list(os.environ):
        if var.startswith("ASPECTRAG_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    use_config_file(None)
    yield work
    use_config_file(None)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_are_written_once() -> None:
    s = get_settings()
    assert s == Settings() and s.config_file is None
    assert (s.index.location, s.chunking) == (".aspectrag", ChunkingSettings(128, 16))
    assert s.llm.configured is False and s.embedder.heads is True
    # every field has its environment variable, all distinct
    names = env_names()
    assert len(set(names.values())) == len(names) and names["index.location"] == "ASPECTRAG_INDEX"


def test_precedence_flag_env_file_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _write(tmp_path / "cfg.toml", 'threads = 3\n[index]\nlocation = "from-file"\n'
                 "[chunking]\nchunk_size = 100\n[llm]\nmodel = \"file-model\"\ntimeout = 7\n")
    monkeypatch.setenv("ASPECTRAG_CONFIG", str(cfg))
    s = get_settings()
    assert s.config_file == cfg
    assert (s.threads, s.index.location, s.chunking.chunk_size) == (3, "from-file", 100)
    assert s.chunking.chunk_overlap == 16  # not in the file: default
    assert (s.llm.model, s.llm.timeout) == ("file-model", 7.0)

    monkeypatch.setenv("ASPECTRAG_INDEX", "from-env")
    monkeypatch.setenv("ASPECTRAG_LLM_TIMEOUT", "9.5")
    monkeypatch.setenv("ASPECTRAG_THREADS", "")  # empty: ignored
    s = get_settings()
    assert (s.index.location, s.llm.timeout, s.threads) == ("from-env", 9.5, 3)
    assert s.llm.model == "file-model"

    s = get_settings(index={"location": "from-flag"}, llm={"timeout": None}, threads=1)
    assert (s.index.location, s.llm.timeout, s.threads) == ("from-flag", 9.5, 1)  # None: not given
    assert s.replace(chunking={"chunk_overlap": 8}).chunking == ChunkingSettings(100, 8)
    with pytest.raises(AttributeError):
        s.threads = 5  # type: ignore[misc]


def test_config_file_location_order(clean: Path, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    user = _write(tmp_path / "xdg" / "aspectrag" / "config.toml", '[index]\nlocation = "user"\n')
    assert find_config_file() == user and get_settings().index.location == "user"
    local = _write(clean / "aspectrag.toml", '[index]\nlocation = "local"\n')
    assert find_config_file() == Path("aspectrag.toml") and get_settings().index.location == "local"
    env = _write(tmp_path / "env.toml", '[index]\nlocation = "env"\n')
    monkeypatch.setenv("ASPECTRAG_CONFIG", str(env))
    assert get_settings().index.location == "env"
    flag = _write(tmp_path / "flag.toml", '[index]\nlocation = "flag"\n')
    use_config_file(flag)
    assert get_settings().index.location == "flag"
    assert get_settings(config_file=local).index.location == "local"
    use_config_file(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match=r"missing\.toml \(--config\): no such config file"):
        get_settings()
    assert user.exists()


def test_changed_file_or_variable_is_seen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _write(tmp_path / "c.toml", "threads = 2\n")
    assert get_settings(config_file=cfg).threads == 2
    cfg.write_text("threads = 4\n# longer\n")
    assert get_settings(config_file=cfg).threads == 4
    monkeypatch.setenv("ASPECTRAG_THREADS", "6")
    assert get_settings(config_file=cfg).threads == 6


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[index]\nlocaton = 'x'\n", {}, r"c\.toml: unknown keys \['locaton'\] in \[index\]"),
        ("[llm]\ntimeout = 'soon'\n", {}, r"c\.toml: llm\.timeout: invalid value 'soon'"),
        ("threads = [", {}, r"c\.toml \(config file\): cannot read TOML"),
        ("", {"ASPECTRAG_HEADS": "maybe"}, r"environment ASPECTRAG_HEADS: invalid value 'maybe'"),
        ("", {"ASPECTRAG_SERVICE_PORT": "80.5"}, r"ASPECTRAG_SERVICE_PORT: invalid value"),
        ("[service]\napi_keys = ['admin:x']\n", {}, None),  # unknown scope prefix: part of key
    ],
)
def test_bad_values_name_the_file_or_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               text: str, env: dict[str, str],
                                               message: str | None) -> None:
    cfg = _write(tmp_path / "c.toml", text)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    if message is None:
        assert get_settings(config_file=cfg).service.key_scopes("admin:x") == {"read"}
        return
    with pytest.raises(ConfigError, match=message):
        get_settings(config_file=cfg)


def test_api_keys_are_kept_hashed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    digest = hash_api_key("filekey")
    cfg = _write(tmp_path / "c.toml", "[service]\napi_keys = [\n"
                 f'  {{ sha256 = "{digest}", scopes = ["read", "write"] }},\n'
                 '  "read:plainfilekey",\n]\ncors_origins = ["http://localhost:3000"]\n')
    s = get_settings(config_file=cfg).service
    assert s.key_scopes("filekey") == {"read", "write"}
    assert s.key_scopes("plainfilekey") == {"read"} and s.key_scopes("nope") == frozenset()
    assert "plainfilekey" not in repr(s) and s.cors_origins == ("http://localhost:3000",)
    monkeypatch.setenv("ASPECTRAG_SERVICE_API_KEYS", "read+write:k1, k2")
    s = get_settings(config_file=cfg).service  # env replaces the file's list
    assert [k.scopes for k in s.api_keys] == [{"read", "write"}, {"read"}]
    assert "k1" not in repr(s)
    assert ApiKey.parse(f"write:sha256={digest}").sha256 == digest
    with pytest.raises(ConfigError, match="64 hex"):
        ApiKey.parse("sha256=abc")


def test_llm_config_file_sits_between_env_and_main_file(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    llm = _write(tmp_path / "llm.toml", 'model = "llm-file"\nbase_url = "http://127.0.0.1:9/v1"\n')
    cfg = _write(tmp_path / "c.toml", f'[llm]\nmodel = "main-file"\ntimeout = 5\n'
                 f'config_file = "{llm}"\n')
    s = get_settings(config_file=cfg).llm
    assert (s.model, s.base_url, s.timeout, s.configured) == ("llm-file", "http://127.0.0.1:9/v1",
                                                              5.0, True)
    monkeypatch.setenv("ASPECTRAG_LLM_MODEL", "env")
    assert get_settings(config_file=cfg).llm.model == "env"
    llm.write_text('config_file = "other.toml"\n')
    with pytest.raises(ConfigError, match="cannot name another"):
        get_settings(config_file=cfg)


def test_ask_and_query_generation_resolve_the_llm_alike(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Only ASPECTRAG_LLM_CONFIG set: ``ask`` used the LLM, ``--query-generator auto`` fell back
    to rules. Now both send their requests to the endpoint of the file."""
    from tests.generate.helpers import BagOfWordsEmbedder, make_hits
    from tests.generate.openai_server import FakeOpenAI

    from aspectrag.generate.factory import build_generator
    from aspectrag.generate.openai_chat import OpenAIGenerator
    from aspectrag.retrieve.query_gen.factory import build_query_generator
    from aspectrag.retrieve.query_gen.llm import OpenAIQueryGenerator

    hits = make_hits(["Consuls governed the Republic."])
    with FakeOpenAI(lambda b: {"text": "consuls of Rome\nRoman Republic government"}) as srv:
        f = _write(tmp_path / "llm.toml", f'base_url = "{srv.base_url}"\nmodel = "file-llm"\n')
        monkeypatch.setenv("ASPECTRAG_LLM_CONFIG", str(f))
        gen = build_generator(None, BagOfWordsEmbedder())
        qgen = build_query_generator("auto")
        assert isinstance(gen, OpenAIGenerator) and isinstance(qgen, OpenAIQueryGenerator)
        gen.generate("Who governed Rome?", hits)
        queries = qgen.generate("Who governed Rome?")
    assert [r["model"] for r in srv.requests] == ["file-llm", "file-llm"]
    assert [q.text for q in queries] == ["consuls of Rome", "Roman Republic government"]


def test_cli_index_and_config_follow_the_precedence(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from aspectrag.cli.main import app

    runner = CliRunner()
    cfg = _write(tmp_path / "c.toml", f'[index]\nlocation = "{tmp_path / "file-idx"}"\n')

    def stats(*args: str) -> str:
        """The index location ``stats`` resolved (the indexes do not exist: read commands
        then name the location they looked at)."""
        res = runner.invoke(app, [*args, "stats"])
        assert res.exit_code == 2 and "no index at " in res.output, res.output
        return res.output.split("no index at ")[1].split(";")[0]

    assert stats("--config", str(cfg)) == str(tmp_path / "file-idx")
    monkeypatch.setenv("ASPECTRAG_INDEX", str(tmp_path / "env-idx"))
    assert stats("--config", str(cfg)) == str(tmp_path / "env-idx")
    res = runner.invoke(app, ["--config", str(cfg), "stats", "--index", str(tmp_path / "flag")])
    assert f"no index at {tmp_path / 'flag'};" in res.output
    assert stats() == str(tmp_path / "env-idx")  # --config is not sticky between invocations
    res = runner.invoke(app, ["--config", str(tmp_path / "nope.toml"), "stats"])
    assert res.exit_code == 2 and "error:" in res.output and "nope.toml" in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)


def test_only_settings_reads_the_environment() -> None:
    """The before-stop hook's rule: one module of aspectrag matches os.environ / os.getenv, and
    no CLI option reads an environment variable behind the settings' back (typer envvar=)."""
    src = ROOT / "src" / "aspectrag"
    env_readers = sorted(str(p.relative_to(src)) for p in src.rglob("*.py")
                         if re.search(r"os\.environ|os\.getenv", p.read_text()))
    assert env_readers == ["settings.py"]
    assert not [p for p in src.rglob("*.py") if "envvar=" in p.read_text()]
