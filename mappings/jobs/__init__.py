"""Long work as plain `*_direct` functions: indexing a deployment, batch conversion. Celery tasks (mappings/tasks.py)
and tests call them; they read what they work on from the database, by id."""
