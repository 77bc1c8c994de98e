"""Blind files for the second labelling pass over mini-articles: the article as a reader sees it,
each labelled sentence marked ``[<doc>:<index>]``, labels hidden.

``prepare_article_blind.py articles`` takes every third training article (ids in order, starting
with the first), ``... article_test`` every test article. Writes ``<set>/blind_articles.md``.
"""

import sys

from stance.data.articles import render, set_dir, written_articles


def blind_markdown(name: str) -> str:
    articles = written_articles(name)
    chosen = articles if name == "article_test" else articles[::3]
    parts = []
    for article in chosen:
        text, spans = render(article)
        marked, cursor = [], 0
        for index, span in enumerate(spans):
            marked.append(text[cursor:span.start])
            marked.append(f"[{article['id']}:{index}] {text[span.start:span.end]}")
            cursor = span.end
        marked.append(text[cursor:])
        parts.append(f"## {article['id']}\n\n" + "".join(marked).strip() + "\n")
    return "\n".join(parts)


if __name__ == "__main__":
    name = sys.argv[1]
    path = set_dir(name) / "blind_articles.md"
    path.write_text(blind_markdown(name), encoding="utf-8")
    print(f"wrote {path}")
