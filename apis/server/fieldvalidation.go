package server

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// fieldValidation is what a write does with unknown and duplicate fields,
// as the request's fieldValidation parameter asks (kube-apiserver's
// server-side field validation): Strict refuses the write naming them,
// Warn writes and names them in Warning headers, Ignore drops them. A
// field of the wrong type is refused whatever the mode. The default is
// Strict: a typo in a manifest is a mistake to hear about, and kubectl
// sends Strict unless told --validate=false (Ignore) or warn.
type fieldValidation string

const (
	fieldValidationStrict fieldValidation = metav1.FieldValidationStrict
	fieldValidationWarn   fieldValidation = metav1.FieldValidationWarn
	fieldValidationIgnore fieldValidation = metav1.FieldValidationIgnore
)

// fieldValidationOf reads the parameter (absent: Strict), or answers 400
// naming it.
func fieldValidationOf(r *http.Request) (fieldValidation, error) {
	v := r.URL.Query()["fieldValidation"]
	if len(v) == 0 || v[0] == "" {
		return fieldValidationStrict, nil
	}
	switch m := fieldValidation(v[0]); {
	case len(v) == 1 && (m == fieldValidationStrict || m == fieldValidationWarn || m == fieldValidationIgnore):
		return m, nil
	}
	return "", apierrors.NewBadRequest(fmt.Sprintf("fieldValidation: unsupported value %q (Strict, Warn or Ignore)", strings.Join(v, ",")))
}

// writeWarnings sends warnings as kube-apiserver does: one
// `Warning: 299 - "text"` header each, which kubectl prints as
// "Warning: text".
func writeWarnings(w http.ResponseWriter, warnings []string) {
	for _, text := range warnings {
		w.Header().Add("Warning", "299 - "+strconv.Quote(text))
	}
}
