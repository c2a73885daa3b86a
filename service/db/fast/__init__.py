"""The optional fast path of the data layer: prepared plans, the PostgreSQL reader and read
lane, the inline SQLite reader, the LISTEN listener and the live-session memory."""
