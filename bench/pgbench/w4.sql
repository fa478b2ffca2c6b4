-- W4: one investor's investments with each fund's name.
SELECT i.amount_usd, i.investment_date, f.name
FROM investments i JOIN funds f ON f.id = i.fund_id
WHERE i.investor_id = :investor ORDER BY i.investment_date DESC, i.id DESC LIMIT 100;
