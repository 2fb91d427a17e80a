// Package distconsts stands in for the engine's distconsts module, whose versions the Go
// module proxy refuses here (403). It holds only the names the engine, its init binary and
// the Go SDK read: install paths inside the engine image, environment variable names and
// the helper image references. Values follow the engine's own build code at DAGGER_VERSION;
// scripts/dagger-engine fails the build if the engine references a name missing here.
package distconsts

// Engine container and socket.
const (
	EngineContainerName   = "dagger-engine.dev"
	DefaultEngineSockAddr = "unix:///run/dagger/engine.sock"
)

// Paths inside the engine image.
const (
	RuncPath                         = "/usr/local/bin/runc"
	DaggerInitPath                   = "/usr/local/bin/dagger-init"
	TiniPath                         = "/usr/local/bin/tini"
	EngineDefaultStateDir            = "/var/lib/dagger"
	EngineContainerBuiltinContentDir = "/usr/local/share/dagger/content"
	EngineCustomCACertsDir           = "/usr/local/share/ca-certificates"
)

// Environment variables naming the SDK runtimes bundled in the image.
const (
	GoSDKManifestDigestEnvName         = "DAGGER_GO_SDK_MANIFEST_DIGEST"
	PythonSDKManifestDigestEnvName     = "DAGGER_PYTHON_SDK_MANIFEST_DIGEST"
	TypescriptSDKManifestDigestEnvName = "DAGGER_TYPESCRIPT_SDK_MANIFEST_DIGEST"
)

// Helper images the engine starts containers from.
const (
	AlpineVersion  = "3.22.1"
	AlpineImage    = "alpine:" + AlpineVersion
	GolangVersion  = "1.26"
	GolangImage    = "golang:" + GolangVersion + "-alpine"
	BusyboxVersion = "1.37.0"
	BusyboxImage   = "busybox:" + BusyboxVersion
)

// OCIVersionAnnotation is the image annotation carrying the engine version.
const OCIVersionAnnotation = "org.opencontainers.image.version"
