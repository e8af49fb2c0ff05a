// Package version is the build's version, set at link time:
//
//	go build -ldflags "-X github.com/left4me/left4me/apis/version.Version=v0.1.0"
package version

import "runtime"

// Version is the release, or "dev" for a plain go build.
var Version = "dev"

// Info is what `l4mctl version` and GET /version show.
type Info struct {
	Version   string `json:"version"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// Get returns this binary's Info.
func Get() Info {
	return Info{Version: Version, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
}
