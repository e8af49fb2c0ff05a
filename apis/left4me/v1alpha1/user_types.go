package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// User is a person who logs in to the dashboard with a password. Its name
// is the login name; its roles mean what a User token's do. A password is
// written through spec.password, which the server turns into an argon2id
// hash in status.passwordHash and never stores; the API never returns the
// hash either (it is removed from every answer, watches included), because
// unlike a token's 256-bit secret a password can be guessed offline from
// its hash. Only admins see Users.
type User struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   UserSpec   `json:"spec"`
	Status UserStatus `json:"status,omitempty"`
}

// UserSpec is who the user is and what they may do.
type UserSpec struct {
	// Roles are the user's role bindings, as a User token's.
	//
	// +listType=atomic
	Roles       []RoleBinding `json:"roles"`
	Description string        `json:"description,omitempty"`
	// Password sets a new password (write-only: required on create,
	// optional on update, where empty keeps the current one).
	Password string `json:"password,omitempty"`
}

// UserStatus holds what the server keeps about the password.
type UserStatus struct {
	// PasswordHash is the PHC string of the argon2id hash
	// ($argon2id$v=19$m=...,t=...,p=...$salt$hash). Stored, never served.
	PasswordHash string `json:"passwordHash,omitempty"`
	// PasswordChangedAt is when the password was last set.
	PasswordChangedAt *metav1.Time `json:"passwordChangedAt,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// UserList is a list of Users.
type UserList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []User `json:"items"`
}
