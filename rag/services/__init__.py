"""Knowledge-base workflows: ingestion (writes), retrieval and answering (reads + providers)."""
