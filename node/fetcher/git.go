package fetcher

import "context"

// FetchGit writes a git source's tree at its resolved commit into
// staging/tree (see GitSpec).
func FetchGit(ctx context.Context, spec GitSpec, staging string) (Result, error) {
	return Result{}, &Error{Reason: InvalidSpec, URL: spec.URL, Message: "git sources are not fetched yet"}
}
