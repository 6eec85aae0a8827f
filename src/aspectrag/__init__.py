"""aspectrag: retrieval-augmented generation for questions with many aspects.

Public API: :class:`Index`, :func:`ingest`, :func:`search`, :func:`ask`; core types in
:mod:`aspectrag.types`.
"""

from aspectrag.index import Index, ask, ingest, search
from aspectrag.types import Answer, Chunk, Citation, Document, Hit

__all__ = ["Index", "ingest", "search", "ask", "Answer", "Chunk", "Citation", "Document", "Hit"]
__version__ = "0.1.0"
