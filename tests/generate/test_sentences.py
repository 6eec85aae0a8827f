from aspectrag.generate.sentences import logical_lines, split_line, split_sentences


def test_enumeration_with_abbreviations_stays_one_sentence() -> None:
    line = (
        'Task decomposition can be done (1) by LLM with simple prompting like "Steps for XYZ.\\n1.", '
        '"What are the subgoals for achieving XYZ?", (2) by using task-specific instructions; '
        'e.g. "Write a story outline." for writing a novel, or (3) with human inputs. Another one.'
    )
    parts = split_line(line)
    assert len(parts) == 2
    assert parts[0].startswith("Task decomposition") and parts[0].endswith("human inputs.")
    assert parts[1] == "Another one."


def test_split_line_protects_et_al_and_initials() -> None:
    text = "Tree of Thoughts (Yao et al. 2023) extends CoT. J. Smith agreed. It works!"
    assert split_line(text) == [
        "Tree of Thoughts (Yao et al. 2023) extends CoT.",
        "J. Smith agreed.",
        "It works!",
    ]


def test_pdf_wrapped_lines_are_joined_and_dehyphenated() -> None:
    text = (
        "1 Introduction\n"
        "We introduce a new language representa-\n"
        "tion model called BERT, which stands for\n"
        "Bidirectional Encoder Representations from\n"
        "Transformers. It uses task-specific heads and\n"
        "no task-\nspecific architecture.\n"
    )
    lines = logical_lines(text)
    assert lines[0] == "1 Introduction"
    assert lines[1].startswith(
        "We introduce a new language representation model called BERT, which"
    )
    assert "from Transformers." in lines[1]
    assert "no task-specific architecture." in lines[1]  # hyphen kept: 'task-specific' occurs


def test_headings_and_list_items_stay_apart() -> None:
    text = (
        "Task Decomposition\n"
        "Chain of thought has become a standard prompting technique for complex tasks here.\n"
        "The agent uses three tools:\n- a search engine\n- a calculator\n- a code interpreter\n"
        "Then it stops."
    )
    sents = [s.text for s in split_sentences(text)]
    assert sents[0] == "Task Decomposition"
    assert (
        sents[2]
        == "The agent uses three tools: - a search engine - a calculator - a code interpreter"
    )
    assert sents[3] == "Then it stops."
    assert [s.position for s in split_sentences(text)] == [0, 1, 2, 3]


def test_ligatures_are_expanded() -> None:
    assert (
        split_sentences("We ﬁne-tune the model on ﬂows.")[0].text
        == "We fine-tune the model on flows."
    )
