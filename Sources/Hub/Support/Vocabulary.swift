// The store's records are the hub's vocabulary. The API and the console name them through Hub
// and never import Store, so that nothing above the hub can reach past it into the database.
@_exported import struct Store.APIToken
@_exported import enum Store.AWSProvisioningState
@_exported import struct Store.Device
@_exported import struct Store.DeviceCertificate
@_exported import struct Store.DeviceMessage
@_exported import enum Store.DeviceStatus
@_exported import struct Store.Downlink
@_exported import struct Store.Event
@_exported import struct Store.Integration
@_exported import struct Store.IntegrationSettings
@_exported import enum Store.IntegrationStatus
@_exported import struct Store.ProvisioningJob
@_exported import enum Store.Role
@_exported import struct Store.Webhook
@_exported import struct Store.WebhookAttempt
@_exported import struct Store.WebhookDelivery
@_exported import enum Store.WebhookDeliveryState

import Store

/// Which devices a list shows: by status, label, or a search of id and name.
public typealias DeviceFilter = DeviceRepository.Filter
/// Which events a list shows: by device and type.
public typealias EventFilter = EventRepository.Filter
