"""Builds demo.warc: a few HTML pages written by the ouroboros team, wrapped as WARC records.

Run from this folder: python build_demo_warc.py (the output is committed; rerun after edits).
"""

from io import BytesIO

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

PAGES = [
    ("https://harbour-diary.example.org/2024/05/nets", 200, "text/html; charset=utf-8", """<!doctype html>
<html lang="en"><head><title>Mending nets</title></head><body>
<nav><a href="/">Home</a> | <a href="/archive">Archive</a> | <a href="/about">About</a></nav>
<article><h1>Mending nets on the harbour wall</h1>
<p>Every Thursday the old fishermen sit on the harbour wall and mend nets. They do not talk much while they work; the needles go in and out, and the torn squares close one knot at a time.</p>
<p>I asked Tomás how long it takes to learn. He said the knot takes an afternoon and the patience takes thirty years. His hands are quicker than my eyes, and he never looks down at them.</p>
<p>When the tide turns they fold the nets into the boats and go home for lunch, leaving the wall smelling of tar and salt.</p>
</article><footer>Comments are closed. &copy; 2024 Harbour Diary</footer></body></html>"""),
    ("https://cucina-di-casa.example.it/ricette/minestrone", 200, "text/html; charset=utf-8", """<!doctype html>
<html lang="it"><head><title>Minestrone</title></head><body>
<div class="menu"><a href="/">Ricette</a> <a href="/contatti">Contatti</a></div>
<main><h1>Il minestrone della nonna</h1>
<p>Il minestrone non ha una ricetta fissa: si fa con le verdure che ci sono. Mia nonna cominciava sempre con cipolla, carota e sedano, poi aggiungeva patate, zucchine, fagioli e un pezzo di crosta di parmigiano.</p>
<p>La cottura deve essere lenta, almeno un'ora e mezza, e il giorno dopo è ancora più buono. Alla fine si aggiunge un filo d'olio crudo e, se piace, un po' di pasta corta.</p>
</main></body></html>"""),
    ("https://riverside-notes.example.org/2023/flood-book?print=1", 200, "text/html", """<html><body>
<p>The river behind our house floods almost every spring. My grandfather kept a notebook of the water levels from 1962 until he died, and my mother kept it going after him. Reading it now, you can see the years when the snow came late, the year the old mill dam finally gave way, and the three springs in a row when the water reached the second step of the porch.</p>
<p>Last April it reached the third step. We moved the chickens up to the barn loft and waited. The neighbours came by with sandbags, and somebody brought soup. Nobody talked much about why the floods keep getting higher; we just wrote the number down, the way he always did.</p>
<p>Printed from Riverside Notes.</p></body></html>"""),
    ("https://docs.example.org/report.pdf", 200, "application/pdf", "%PDF-1.4\n% a binary payload the pipeline must reject, not parse\n"),
    ("https://harbour-diary.example.org/old-page", 404, "text/html", "<html><body><h1>Not found</h1></body></html>"),
]


def main() -> None:
    with open("demo.warc", "wb") as out:
        writer = WARCWriter(out, gzip=False)
        for url, status, ctype, body in PAGES:
            payload = body.encode("utf-8")
            reason = {200: "OK", 404: "Not Found"}[status]
            http = StatusAndHeaders(f"{status} {reason}", [("Content-Type", ctype),
                                                           ("Content-Length", str(len(payload)))],
                                    protocol="HTTP/1.1")
            record = writer.create_warc_record(url, "response", payload=BytesIO(payload),
                                               http_headers=http,
                                               warc_headers_dict={"WARC-Date": "2024-06-01T12:00:00Z"})
            writer.write_record(record)


if __name__ == "__main__":
    main()
