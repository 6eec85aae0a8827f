"""Helpers for the training tests."""

from __future__ import annotations

from aspectrag.train.data import TrainPair


def toy_pairs() -> list[TrainPair]:
    """Eight (query, passage) pairs on unrelated topics."""
    topics = [
        ("cats", "Cats are small domesticated felines that purr."),
        ("rockets", "Rockets burn propellant to produce thrust in space."),
        ("coffee", "Coffee is brewed from roasted beans and contains caffeine."),
        ("volcano", "Volcanoes erupt molten lava and ash from the mantle."),
        ("piano", "The piano is a keyboard instrument with hammers and strings."),
        ("glacier", "Glaciers are slow rivers of ice that carve valleys."),
        ("bread", "Bread is baked from flour, water and yeast."),
        ("bitcoin", "Bitcoin is a decentralised digital currency on a blockchain."),
    ]
    return [TrainPair(f"tell me about {t}", text) for t, text in topics]
