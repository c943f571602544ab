// One reading of a test run for every page that shows one (editor, mapping list, versions): neutral when nothing ran,
// red on any failure, green only when at least one sample passed and none failed. "0 passed" is not a success.

export function runVerdict(run) {
  if (!run) return { kind: "muted", text: "not run" };
  if (run.failed > 0) return { kind: "bad", text: `${run.failed} failed, ${run.passed} passed` };
  if (run.passed > 0) return { kind: "ok", text: `${run.passed} passed` };
  return { kind: "muted", text: "no samples ran" };
}

// What the run was against: a version, or the draft at a revision.
export function runTarget(run) {
  return run.version ? `v${run.version}` : `draft revision ${run.draft_revision}`;
}
