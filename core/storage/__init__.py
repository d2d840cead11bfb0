"""PostgreSQL storage: pool, migrations and one repository per aggregate."""
