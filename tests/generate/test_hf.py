"""HFGenerator (concatenation decoding) with tiny random local models."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.generate.helpers import make_hits
from tests.generate.tiny_models import KINDS

from aspectrag.generate.base import GenerationError, StreamingGenerator
from aspectrag.generate.factory import build_generator
from aspectrag.generate.hf import HFGenerator
from aspectrag.generate.hf_model import LocalLM
from aspectrag.generate.prompt import Prompt, PromptTemplate
from aspectrag.generate.rag import RagGenerator

SHORT = PromptTemplate(system="the task", passage="{n} {text}", user="{context} is {question}")


@pytest.mark.parametrize("kind", KINDS)
def test_generate_and_stream_agree(kind: str, tiny_models: dict[str, Path]) -> None:
    g = HFGenerator(tiny_models[kind], max_new_tokens=8, device="cpu", template=SHORT)
    assert isinstance(g, StreamingGenerator) and g.name == f"hf:{kind}"
    hits = make_hits(["bert masked model", "next sentence task"])
    a = g.generate("what is the bert task", hits)
    assert a.mode == "llm" and a.answer  # random weights: content is not judged
    assert a.extras["context"]["shown"] == [1, 2]
    s = g.stream("what is the bert task", hits)
    text = "".join(s)
    assert text.strip() and s.answer.answer == a.answer


def test_context_is_packed_with_the_models_tokenizer(tiny_short_gpt2: Path) -> None:
    g = HFGenerator(tiny_short_gpt2, max_new_tokens=16, device="cpu", template=SHORT)
    hits = make_hits([("bert " * 30).strip(), ("task " * 40).strip(), "model"])
    prompt, ids = g.lm.build_prompt("q", hits, max_new_tokens=16, template=SHORT)
    assert len(ids) + 16 <= 96  # the model's 96 positions hold prompt + answer
    assert prompt.shown == [1, 2] and prompt.truncated == [2] and prompt.dropped == [3]
    a = g.generate("q", hits)  # runs without exceeding the position limit
    assert a.extras["context"]["dropped"] == [3]


def test_chat_template_is_used_when_present(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    lm = LocalLM(tiny_models["llama"], device="cpu")
    lm.tokenizer.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}<assistant>"
    )
    assert lm.render(Prompt("S", "U")) == "<system>S<user>U<assistant>"
    assert LocalLM(tiny_models["t5"], device="cpu").render(Prompt("S", "U")) == "S\n\nU\n\nAnswer:"


def test_bad_model_folder(tmp_path: Path) -> None:
    with pytest.raises(GenerationError, match="no config.json"):
        HFGenerator(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(GenerationError, match="cannot load"):
        HFGenerator(tmp_path).generate("q", make_hits(["x"]))


def test_factory_builds_local_backends(tiny_models: dict[str, Path]) -> None:
    path = tiny_models["gpt2"]
    assert isinstance(build_generator(f"hf:{path}"), HFGenerator)
    g = build_generator(f"hf:{path}", decoding="rag-sequence", num_beams=2)
    assert isinstance(g, RagGenerator) and g.decoding == "rag-sequence" and g.num_beams == 2
