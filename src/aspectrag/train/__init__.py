"""Fine-tuning of the retriever: LoRA adapters for the embedding model (Hu et al. 2021).

- ``data``: (query, positive[, negatives]) pairs from a JSONL file or a BEIR split, and
  BM25-mined hard negatives.
- ``lora``: the training loop (multiple-negatives ranking loss with in-batch negatives).
- ``adapter``: adapter identity, loading an adapter onto a base model, merging into a plain model.
"""
