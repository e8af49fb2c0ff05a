package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// statusFor turns any error into the metav1.Status a client decodes.
func statusFor(err error) metav1.Status {
	var apiErr apierrors.APIStatus
	if errors.As(err, &apiErr) {
		st := apiErr.Status()
		st.Kind, st.APIVersion = "Status", "v1"
		if st.Status == "" {
			st.Status = metav1.StatusFailure
		}
		return st
	}
	st := apierrors.NewInternalError(err).Status()
	st.Kind, st.APIVersion = "Status", "v1"
	return st
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.Encode(v)
}

func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	st := statusFor(err)
	if st.Code >= 500 {
		h.log.Error(err, "request failed", "method", r.Method, "path", r.URL.Path)
	}
	if d := st.Details; d != nil && d.RetryAfterSeconds > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(d.RetryAfterSeconds)))
	}
	writeJSON(w, int(st.Code), st)
}

func notFoundPath(path string) error {
	return apierrors.NewGenericServerResponse(http.StatusNotFound, "", schemaGR(""), "", fmt.Sprintf("the server could not find the requested resource (%s)", path), 0, false)
}

func methodNotAllowed(method, what string) error {
	return apierrors.NewMethodNotSupported(schemaGR(what), method)
}
