{{ config(materialized='table') }}
select id, name, upper(city) as city, score * 2 as double_score
from {{ ref('people') }}
