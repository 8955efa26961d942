{{ config(materialized='view') }}
select id, name
from {{ ref('people_table') }}
where double_score > 20
