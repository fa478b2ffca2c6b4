-- W2: the biggest fund's 20 newest investments with each investor's name and email.
SELECT i.amount_usd, i.investment_date, v.name, v.email
FROM investments i JOIN investors v ON v.id = i.investor_id
WHERE i.fund_id = :fund ORDER BY i.investment_date DESC, i.id DESC LIMIT 20;
