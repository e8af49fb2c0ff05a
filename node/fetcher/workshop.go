package fetcher

import "context"

// FetchWorkshop writes a workshop source's items into staging/tree (see
// WorkshopSpec).
func FetchWorkshop(ctx context.Context, spec WorkshopSpec, staging string) (Result, error) {
	return Result{}, &Error{Reason: InvalidSpec, URL: "workshop", Message: "workshop sources are not fetched yet"}
}
