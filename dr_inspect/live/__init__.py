"""Live capture agents (one tcpdump per capture point) and streaming verification (watch)."""
