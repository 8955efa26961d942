{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='id') }}
select id, value
from {{ ref('events') }}
{% if is_incremental() %}
where batch = {{ var('batch') }}
{% else %}
where batch <= {{ var('batch') }}
{% endif %}
