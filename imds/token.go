package imds

import (
	"encoding/base64"
	"encoding/json"
	"strings"
)

// Which identity a token belongs to.
//
// A token request without an identity selector (client_id, object_id,
// msi_res_id) is answered with the system-assigned identity when the VM has
// one, and otherwise with the VM's only user-assigned identity (Microsoft's
// managed-identities FAQ, "What identity will IMDS default to if I don't
// specify the identity in the request?"; discussed in
// MicrosoftDocs/azure-docs#81232). Entra ID login needs the system-assigned
// one: the VM's login application trusts the VM's own identity, so a token
// for a user-assigned identity says nothing about whether logins work.
//
// The access token's xms_mirid claim carries the ARM resource id of the
// managed identity that obtained it (MicrosoftDocs/azure-docs#32131):
//
//	/subscriptions/…/resourcegroups/…/providers/Microsoft.Compute/virtualMachines/<vm>            system-assigned (VM)
//	/subscriptions/…/resourcegroups/…/providers/Microsoft.Compute/virtualMachineScaleSets/<vmss>  system-assigned (scale set)
//	/subscriptions/…/resourcegroups/…/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>  user-assigned
//
// The claim is read from the token's payload without checking its
// signature: the token comes straight from the link-local metadata service
// (never through a proxy) and is used for nothing but this classification,
// so a forged signature could only make us report a wrong diagnosis, never
// grant anything. The token itself is never logged or kept.

// IdentityKind is what a token says about the identity behind it.
type IdentityKind int

const (
	// IdentityUnverified: the token does not say (not a JWT, or no
	// xms_mirid claim). Treated as the system-assigned identity, since
	// that is what IMDS answers with when it has one.
	IdentityUnverified IdentityKind = iota
	// IdentitySystemAssigned: xms_mirid names the VM or scale set.
	IdentitySystemAssigned
	// IdentityUserAssigned: xms_mirid names a user-assigned identity.
	IdentityUserAssigned
)

func (k IdentityKind) String() string {
	switch k {
	case IdentitySystemAssigned:
		return "system-assigned"
	case IdentityUserAssigned:
		return "user-assigned"
	}
	return "unverified"
}

// userAssignedMarker is the resource type of user-assigned identities in
// an ARM resource id (compared case-insensitively: ARM ids are).
const userAssignedMarker = "/providers/microsoft.managedidentity/userassignedidentities/"

// maxTokenLen bounds what we decode: real tokens are a few kB.
const maxTokenLen = 32 << 10

// TokenIdentity reads the xms_mirid claim of a JWT access token and
// classifies it. It never fails: anything it cannot read is
// IdentityUnverified with an empty resource id.
func TokenIdentity(token string) (IdentityKind, string) {
	if len(token) > maxTokenLen {
		return IdentityUnverified, ""
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return IdentityUnverified, ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return IdentityUnverified, ""
	}
	var claims struct {
		MIRID string `json:"xms_mirid"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.MIRID == "" {
		return IdentityUnverified, ""
	}
	return ClassifyResourceID(claims.MIRID), claims.MIRID
}

// ClassifyResourceID tells a user-assigned identity's resource id from a
// VM's or scale set's (system-assigned).
func ClassifyResourceID(id string) IdentityKind {
	if strings.Contains(strings.ToLower(id), userAssignedMarker) {
		return IdentityUserAssigned
	}
	return IdentitySystemAssigned
}

// resourceName is the last segment of an ARM resource id.
func resourceName(id string) string {
	id = strings.TrimRight(id, "/")
	if i := strings.LastIndexByte(id, '/'); i >= 0 {
		return id[i+1:]
	}
	return id
}
