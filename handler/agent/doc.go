// Package agent implements the small pieces of the contract between the
// Azure Linux guest agent (waagent) and this extension handler: finding and
// parsing HandlerEnvironment.json, choosing the sequence number, reading the
// settings file (and decrypting protected settings with openssl), keeping
// mrseq, writing status files, writing extension events, the handler's own
// rotating log and the handler lock.
//
// The package knows file formats and paths, not the lifecycle: what each verb
// does with these pieces is the handler package's business. Everything the
// agent wrote is treated as untrusted input: sizes are bounded, types are
// checked, and problems come back as *failure.Error values whose message the
// user can act on.
package agent

// HandlerName is <Publisher>.<Type> of the extension. It names the status
// entries and matches the directory names the agent uses.
const HandlerName = "Microsoft.Azure.ActiveDirectory.AADSSHLoginForLinux"

// maxInputFile bounds every agent-written file we read. The real files are a
// few hundred bytes; anything near this size is corrupt or hostile, and
// reading it whole would only waste memory.
const maxInputFile = 1 << 20

// utf8BOM is stripped from agent files: the agent itself strips it from the
// manifest, and editors on Windows add it to hand-written test files.
const utf8BOM = "\ufeff"
