"""The results store (SQLAlchemy: SQLite by default, PostgreSQL when shared): calls, utterances,
rule results, flags and reviews; transcript search and redaction of what it stores."""
