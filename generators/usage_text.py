"""The prompts and responses of the usage generator's events: coding requests, explanations and code.

Texts are assembled from an action, a subject, details and (sometimes) pasted code in one of
:data:`LANGUAGES`; answers from explanations and a code block. :func:`text_pools` builds a fixed pool
once per generator run and events sample it, so millions of documents cost no text building each.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LANGUAGES", "POOL_SIZE", "text_pools"]

LANGUAGES = ("python", "typescript", "go", "java", "rust", "sql", "kotlin", "swift", "csharp", "ruby")
_ACTIONS = (
    "Refactor",
    "Write unit tests for",
    "Explain",
    "Find the bug in",
    "Optimize",
    "Add type hints to",
    "Document",
    "Add logging to",
    "Make thread-safe",
    "Convert to async",
    "Review",
    "Simplify",
    "Add input validation to",
    "Add retries with backoff to",
    "Migrate to the new API in",
    "Profile",
)
_SUBJECTS = (
    "the payment reconciliation job",
    "the user signup handler",
    "this SQL query that joins orders and refunds",
    "the Kafka consumer loop",
    "the cache invalidation logic",
    "the CSV export endpoint",
    "the React hook that fetches invoices",
    "the rate limiter middleware",
    "the OAuth token refresh",
    "the image resize worker",
    "the feature flag evaluator",
    "the search indexer",
    "the billing cron",
    "the GraphQL resolver for accounts",
    "the retry queue",
    "the Terraform module for the VPC",
    "the date parsing helper",
    "the websocket reconnect code",
    "the PDF report generator",
    "the inventory reservation service",
    "the fraud scoring model loader",
    "the Dockerfile",
    "the migration that adds an index",
    "the pagination of the orders API",
    "the health check endpoint",
)
_DETAILS = (
    "It fails intermittently in CI.",
    "Keep the public interface unchanged.",
    "Latency went up after the last deploy.",
    "We need to support Python 3.11.",
    "Memory grows without bound under load.",
    "Follow our style guide.",
    "The function is too long to read.",
    "Edge cases with empty input are not handled.",
    "It deadlocks when two workers start together.",
    "Null values come from the upstream service.",
    "Please keep it backwards compatible.",
    "Tests should not hit the network.",
    "",
)
_EXPLANATIONS = (
    "The root cause is a shared mutable default that leaks state between calls.",
    "Splitting the function into smaller helpers makes each step testable on its own.",
    "Using a bounded queue applies backpressure instead of buffering everything in memory.",
    "The query scans the whole table because the predicate is not sargable; an index on the join key helps.",
    "Retries need jitter, otherwise every client retries at the same instant and overloads the server.",
    "Wrapping both writes in one transaction keeps the ledger and the rows consistent.",
    "The race happens because the check and the update are two separate statements.",
    "Parsing dates with an explicit timezone avoids off-by-one-day errors around midnight.",
    "A context manager guarantees the connection is released even when an exception is raised.",
    "Caching the compiled regular expression removes most of the per-call overhead.",
    "The test is flaky because it depends on wall-clock time; inject a clock instead.",
    "Validating input at the boundary keeps the core logic free of defensive checks.",
)
_CODE = {
    "python": (
        "def {name}(items: list[dict]) -> list[dict]:\n"
        "    return [item for item in items if item.get('active')]\n"
    ),
    "typescript": (
        "export function {name}(items: Item[]): Item[] {{\n  return items.filter((i) => i.active);\n}}\n"
    ),
    "go": (
        "func {name}(items []Item) []Item {{\n\tout := items[:0]\n\tfor _, it := range items {{\n"
        "\t\tif it.Active {{\n\t\t\tout = append(out, it)\n\t\t}}\n\t}}\n\treturn out\n}}\n"
    ),
    "java": (
        "public List<Item> {name}(List<Item> items) {{\n"
        "    return items.stream().filter(Item::isActive).toList();\n}}\n"
    ),
    "rust": (
        "fn {name}(items: Vec<Item>) -> Vec<Item> {{\n"
        "    items.into_iter().filter(|i| i.active).collect()\n}}\n"
    ),
    "sql": (
        "SELECT o.id, SUM(r.amount) AS refunded\n"
        "FROM orders o JOIN refunds r ON r.order_id = o.id\nGROUP BY o.id;\n"
    ),
    "kotlin": "fun {name}(items: List<Item>) = items.filter {{ it.active }}\n",
    "swift": "func {name}(_ items: [Item]) -> [Item] {{ items.filter {{ $0.active }} }}\n",
    "csharp": "public IEnumerable<Item> {name}(IEnumerable<Item> items) => items.Where(i => i.Active);\n",
    "ruby": "def {name}(items)\n  items.select(&:active)\nend\n",
}
_NAMES = ("active_items", "filter_active", "select_enabled", "keep_live", "only_active")
POOL_SIZE = 2048


def text_pools(rng: np.random.Generator) -> tuple[list[str], list[str], list[str]]:
    """Prompt / response texts and their languages, built once and sampled per event."""
    prompts, responses, languages = [], [], []
    for _ in range(POOL_SIZE):
        language = LANGUAGES[int(rng.integers(len(LANGUAGES)))]
        action, subject = (
            _ACTIONS[int(rng.integers(len(_ACTIONS)))],
            _SUBJECTS[int(rng.integers(len(_SUBJECTS)))],
        )
        detail = " ".join(_DETAILS[int(i)] for i in rng.integers(len(_DETAILS), size=int(rng.integers(0, 3))))
        prompt = f"{action} {subject} ({language}). {detail}".strip()
        if rng.random() < 0.35:  # pasted code makes prompts long
            prompt += (
                "\n\n```"
                + language
                + "\n"
                + _CODE[language].format(name="legacy_filter") * int(rng.integers(1, 6))
                + "```"
            )
        sentences = " ".join(
            _EXPLANATIONS[int(i)] for i in rng.integers(len(_EXPLANATIONS), size=int(rng.integers(1, 5)))
        )
        code = _CODE[language].format(name=_NAMES[int(rng.integers(len(_NAMES)))])
        response = f"{sentences}\n\n```{language}\n{code * int(rng.integers(1, 4))}```\n"
        if rng.random() < 0.5:
            response += (
                "Run the tests again after applying the change; " + _EXPLANATIONS[int(rng.integers(12))]
            )
        prompts.append(prompt)
        responses.append(response)
        languages.append(language)
    return prompts, responses, languages
