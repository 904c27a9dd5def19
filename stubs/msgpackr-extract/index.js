// msgpackr loads its optional native accelerator inside try/catch and falls
// back to pure JavaScript when it throws. The real package's per-platform
// binaries are not all on every registry mirror, which leaves package-lock.json
// unsatisfiable for `npm ci`; this stand-in keeps installs reproducible.
throw new Error('msgpackr-extract native acceleration is not installed');
