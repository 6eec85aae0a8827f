"""The batching loop every embedder shares: texts sorted by length, fixed-size batches, one
progress bar.

Sorting by length (longest first, stable) keeps the padding of each batch small; the torch and
ONNX Runtime embedders (:mod:`aspectrag.embed.hf`, :mod:`aspectrag.embed.onnx`,
:mod:`aspectrag.multihead.embedder`) all encode through :func:`length_batches`, so they see the
same batches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


def length_batches(
    texts: Sequence[str], batch_size: int, *, show_progress: bool = False
) -> Iterator[np.ndarray]:
    """Yield the positions of ``texts`` in batches of at most ``batch_size``, longest texts
    (in characters) first, ties in input order.

    Each batch is an int64 array of indices into ``texts`` (every index once over all
    batches); the caller writes its outputs at those rows. With ``show_progress`` a progress
    bar (:func:`aspectrag.progress.progress_bar`, unit "chunk") advances by each batch's size
    once the caller asks for the next one, and is closed when the loop ends, is broken off or
    raises.

    Raises:
        ValueError: ``batch_size`` < 1.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = np.argsort([-len(t) for t in texts], kind="stable").astype(np.int64)
    progress = None
    if show_progress and len(texts):
        from aspectrag.progress import progress_bar

        progress = progress_bar(len(texts), "embedding", "chunk")
    try:
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            yield idx
            if progress is not None:
                progress.update(len(idx))
    finally:
        if progress is not None:
            progress.close()
