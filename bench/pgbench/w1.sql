-- W1: one fund by id, all columns.
SELECT id, name, vintage_year, target_size_usd, status, created_at, updated_at FROM funds WHERE id = :fund;
