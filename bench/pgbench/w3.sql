-- W3 as one statement: the first 50 funds, each with its 10 newest investments and their investors.
SELECT f.name, i.amount_usd, i.investment_date, v.name
FROM (SELECT id, name FROM funds ORDER BY id LIMIT 50) f
CROSS JOIN LATERAL (SELECT amount_usd, investment_date, investor_id FROM investments
                    WHERE fund_id = f.id ORDER BY investment_date DESC, id DESC LIMIT 10) i
JOIN investors v ON v.id = i.investor_id;
