"""The items blueprint: CRUD on resources owned by the calling user."""
