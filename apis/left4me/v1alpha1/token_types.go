package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TokenType says what a bearer token is for.
//
// +enum
type TokenType string

const (
	// TokenUser authenticates a person or a pipeline with its role bindings.
	TokenUser TokenType = "User"
	// TokenJoin lets a new host obtain a Node token, and nothing else.
	TokenJoin TokenType = "Join"
	// TokenNode authenticates one node agent, bound to its node name.
	TokenNode TokenType = "Node"
)

// Roles a token can be bound to.
const (
	RoleAdmin  = "admin"
	RoleEditor = "editor"
	RoleViewer = "viewer"
)

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// Token is a bearer credential. Its name is the public token ID; the secret
// is shown once, when the token is created, and only its SHA-256 is stored.
// Deleting a Token revokes it. Only admins see Tokens.
type Token struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   TokenSpec   `json:"spec"`
	Status TokenStatus `json:"status,omitempty"`
}

// TokenSpec says whom the token stands for and what it may do.
type TokenSpec struct {
	Type TokenType `json:"type"`
	// User names the holder in audit logs (User tokens).
	User string `json:"user,omitempty"`
	// Roles are the holder's role bindings (User tokens).
	//
	// +listType=atomic
	Roles []RoleBinding `json:"roles,omitempty"`
	// NodeName binds a Node token to one node.
	NodeName string `json:"nodeName,omitempty"`
	// ExpirationTime ends the token's validity; empty never expires. A
	// Join token created without one expires 24 hours after its creation.
	ExpirationTime *metav1.Time `json:"expirationTime,omitempty"`
	// Uses is how many nodes may join with a Join token (default 1); each
	// join consumes one, counted in status.used.
	Uses        int32  `json:"uses,omitempty"`
	Description string `json:"description,omitempty"`
}

// RoleBinding grants a role, in one namespace (editor, viewer) or
// everywhere (admin).
type RoleBinding struct {
	Role      string `json:"role"`
	Namespace string `json:"namespace,omitempty"`
}

// TokenStatus holds what the server decides.
type TokenStatus struct {
	// SecretHash is the hex SHA-256 of the secret part.
	SecretHash string `json:"secretHash,omitempty"`
	// Used counts the nodes that joined with a Join token. The server
	// raises it with a compare-and-swap in the same request that checks
	// it, so two nodes joining at once cannot both take the last use.
	Used int32 `json:"used,omitempty"`
	// Token is the whole bearer token. It is set only in the response to the
	// create request and never stored.
	Token string `json:"token,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// TokenList is a list of Tokens.
type TokenList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Token `json:"items"`
}
