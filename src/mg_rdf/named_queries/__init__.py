"""Named queries: the ``queries/*.rq`` folder, read, checked and run with bound parameters.

Each file is a SPARQL SELECT query that starts with a header of ``#+`` comment
lines holding YAML: title, description, parameters (entity, tag, string,
integer, date or enum; required or default), result columns, and whether it
paginates. docs/named-queries.md documents the syntax. The folder is checked
when it is loaded (``header``); a request's values are checked against the
declared types and bound as RDF terms, never pasted into the query text
(``binding``); answers are written as JSON rows, SPARQL results JSON or CSV
(``output``). Nothing here knows Flask: the web API (``mg_rdf.web.api``), the
query page and ``mg-rdf query --name`` call the same functions.
"""

from .binding import (COUNT_CAP, DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET, Answer, AnswerCache, ParameterError, Term,
                      bind_arguments, check_value, page_bounds, prepared_text, run)
from .header import (COLUMN_TYPES, PARAM_TYPES, RESERVED_PARAMS, Column, NamedQuery, Parameter, QueryFileError,
                     UnknownQuery, find_query, load_queries, parse_query, parse_query_file)
from .output import cli_list, cli_run, csv_rows, entity_exists_in, json_value, records, sparql_results_json

__all__ = [
    "COUNT_CAP", "DEFAULT_LIMIT", "MAX_LIMIT", "MAX_OFFSET", "Answer", "AnswerCache", "ParameterError", "Term",
    "bind_arguments", "check_value", "page_bounds", "prepared_text", "run", "COLUMN_TYPES", "PARAM_TYPES",
    "RESERVED_PARAMS", "Column", "NamedQuery", "Parameter", "QueryFileError", "UnknownQuery", "find_query",
    "load_queries", "parse_query", "parse_query_file", "cli_list", "cli_run", "csv_rows", "entity_exists_in",
    "json_value", "records", "sparql_results_json",
]
