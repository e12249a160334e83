"""Evaluation sets and the code that scores them (retrieval: ``rag.evaluation``; answers: ``rag.eval.answers``)."""
